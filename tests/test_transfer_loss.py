"""Transfer sets in the loss: rows labelled -100 get KD and L_freq but no CE; a batch without labels logs no CE;
gate_teacher_errors drops KD on labelled rows the teacher gets wrong (docs/method.md, "Transfer sets")."""

import pytest
import torch
import torch.nn.functional as F
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset

from hf_spectralkd import SpectralDistillationTrainer


def build(tmp_path, rows, **config):
    trainer = SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, spectral_dynamics=False, **config),
        train_dataset=Dataset.from_list(rows),
        data_collator=pad_collate,
    )
    with torch.no_grad():  # a confident teacher: KD values far from float32 rounding
        trainer.teacher.classifier.weight.mul_(40.0)
    return trainer


def reference_terms(trainer, batch, tau):
    with torch.no_grad():
        s = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
        t = trainer.teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
    p_t = F.softmax(t / tau, dim=-1)
    kd_rows = tau**2 * (p_t * (p_t.log() - F.log_softmax(s / tau, dim=-1))).sum(-1)
    ce_rows = -F.log_softmax(s, dim=-1).gather(1, batch["labels"].clamp_min(0)[:, None])[:, 0]
    return s, t, kd_rows, ce_rows


def test_unlabelled_rows_add_kd_only(tmp_path):
    rows = make_token_rows(8, seed=3)
    for row in rows[::2]:
        row["labels"] = -100  # half the batch is transfer data
    alpha, tau = 0.7, 2.0
    trainer = build(tmp_path, rows, alpha=alpha, temperature=tau, beta=0.0)
    trainer.model.eval()
    batch = pad_collate(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    _, _, kd_rows, ce_rows = reference_terms(trainer, batch, tau)
    labelled = batch["labels"] != -100
    ce = ce_rows[labelled].mean()
    expected = (1 - alpha) * ce + alpha * kd_rows.mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-4, abs=1e-8)
    logs = trainer._reduce_metrics("eval")
    assert logs["ce_loss"] == pytest.approx(float(ce), rel=1e-4, abs=1e-8)
    assert logs["kd_loss"] == pytest.approx(float(kd_rows.mean()), rel=1e-4, abs=1e-8)


def test_a_batch_without_labels_gives_finite_loss_and_logs_no_ce(tmp_path):
    rows = make_token_rows(8, seed=4)
    labelled_rows = [dict(r) for r in rows]
    for row in rows:
        row["labels"] = -100
    trainer = build(tmp_path, rows, alpha=0.5, beta=0.0)
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(pad_collate(rows)))
    _, _, kd_rows, _ = reference_terms(trainer, pad_collate(rows), 1.0)
    assert torch.isfinite(loss) and float(loss) == pytest.approx(0.5 * float(kd_rows.mean()), rel=1e-4, abs=1e-8)
    assert "ce_loss" not in trainer._reduce_metrics("eval")  # no labelled row in the window: no CE value at all
    # a window mixing an unlabelled batch with a labelled one: CE is the labelled batch's, not halved by a 0
    with torch.no_grad():
        trainer.compute_loss(trainer.model, dict(pad_collate(rows)))
        trainer.compute_loss(trainer.model, dict(pad_collate(labelled_rows)))
    _, _, _, ce_rows = reference_terms(trainer, pad_collate(labelled_rows), 1.0)
    assert trainer._reduce_metrics("eval")["ce_loss"] == pytest.approx(float(ce_rows.mean()), rel=1e-4, abs=1e-8)


def test_training_on_a_transfer_set_logs_every_term(tmp_path):
    rows = make_token_rows(32, seed=5)
    for row in rows[8:]:
        row["labels"] = -100
    trainer = build(tmp_path, rows, teacher_layers=[2, 4], max_steps=4)
    trainer.train()
    logs = [e for e in trainer.state.log_history if "kd_loss" in e]
    assert len(logs) == 4
    assert all(torch.isfinite(torch.tensor(e["loss"])) and e["freq_loss"] > 0 for e in logs)


def test_gate_teacher_errors_trains_wrong_rows_on_labels_alone(tmp_path):
    rows = make_token_rows(8, seed=6)
    alpha, tau = 0.9, 1.0
    trainer = build(tmp_path, rows, alpha=alpha, temperature=tau, beta=0.0, gate_teacher_errors=True)
    trainer.model.eval()
    batch = pad_collate(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    _, t, kd_rows, ce_rows = reference_terms(trainer, batch, tau)
    wrong = t.argmax(-1) != batch["labels"]
    assert 0 < int(wrong.sum()) < len(rows)  # the random teacher gets some rows right and some wrong
    a = torch.where(wrong, torch.zeros_like(kd_rows), torch.full_like(kd_rows, alpha))
    expected = ((1 - a) * ce_rows).mean() + (a * kd_rows).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-4, abs=1e-8)
    ungated = (1 - alpha) * ce_rows.mean() + alpha * kd_rows.mean()
    assert abs(float(loss) - float(ungated)) > 1e-3


@pytest.mark.parametrize("student_hidden", [16, 48])
def test_width_pooling_in_both_directions_through_the_trainer(tmp_path, student_hidden):
    """A narrower (16) and a wider (48) student than the 32-wide teacher: the wider tensor is pooled to the
    narrower width, so the term is defined and trains either way."""
    from hf_spectralkd.spectral import frequency_alignment_loss

    rows = make_token_rows(16, seed=7)
    trainer = SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=student_hidden, seed=1, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, spectral_dynamics=False, teacher_layers=[2, 4], max_steps=2),
        train_dataset=Dataset.from_list(rows), data_collator=pad_collate,
    )
    trainer.model.eval()
    batch = pad_collate(rows[:8])
    with torch.no_grad():
        trainer.compute_loss(trainer.model, dict(batch))
        s = trainer.model(**{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True)
        t = trainer.teacher(**{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True)
    pooled = F.adaptive_avg_pool1d  # the reference: pool the wider tensor's hidden axis to the narrower width
    expected = []
    for s_layer, t_layer in ((1, 2), (2, 4)):
        hs, ht = s.hidden_states[s_layer], t.hidden_states[t_layer]
        width = min(hs.shape[-1], ht.shape[-1])
        hs, ht = pooled(hs, width), pooled(ht, width)
        expected.append(float(frequency_alignment_loss(hs, ht, batch["attention_mask"])))
    logged = trainer._reduce_metrics("eval")["freq_loss"]
    assert logged == pytest.approx(sum(expected) / 2, rel=1e-5) and logged > 0
    trainer.model.train()
    trainer.train()
    assert all(torch.isfinite(torch.tensor(e["freq_loss"])) for e in trainer.state.log_history if "freq_loss" in e)
