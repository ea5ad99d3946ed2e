"""SpectralDistillationTrainer end to end on tiny BERT / RoBERTa teachers (4 blocks) and students (2 blocks)."""

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_LABELS, make_token_rows, pad_collate, small_config, tiny_bert, tiny_roberta
from datasets import Dataset
from test_spectral import ref_freq_loss, ref_spectrum
from transformers import TrainerCallback

from hf_spectralkd import SpectralDistillationTrainer, SpectralProfile, select_layers

FAMILIES = {
    # (builder, pad id of the tokenizer family)
    "bert": (tiny_bert, 0),
    "roberta": (tiny_roberta, 1),
}


def make_trainer(tmp_path, family="bert", rows=None, eval_rows=None, **overrides):
    build, pad_id = FAMILIES[family]
    teacher = build(num_layers=4, hidden=32, seed=0)
    student = build(num_layers=2, hidden=16, seed=1)
    overrides.setdefault("spectral_dynamics", False)  # the dynamics callback is tested with its own module
    args = small_config(tmp_path, **overrides)
    return SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=Dataset.from_list(rows if rows is not None else make_token_rows()),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows is not None else None,
        data_collator=lambda batch: pad_collate(batch, pad_id=pad_id),
    )


def accuracy(prediction):
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def independent_intensity(teacher, rows, pad_id):
    """Teacher intensities over ``rows`` with the numpy reference (one padded batch: padding does not count)."""
    batch = pad_collate(rows, pad_id=pad_id)
    teacher.eval()
    with torch.no_grad():
        out = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    return [ref_spectrum(h.numpy(), batch["attention_mask"].numpy()).mean() for h in out.hidden_states]


class GradientCapture(TrainerCallback):
    """Copies the student's gradients right before the first optimizer step."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def first_step_gradients(tmp_path, per_device, accumulation):
    # Fixed-length sequences: the token-axis rfft runs over the padded length of each batch, so with dynamic
    # padding two micro-batches of 4 could be padded to other lengths than one batch of 8 and give a different
    # frequency loss. With equal lengths every term is a mean over examples and the two schedules must agree.
    rows = make_token_rows(8, seed=6, fixed_len=10)
    teacher = tiny_bert(4, 32, seed=0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    student = tiny_bert(2, 16, seed=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    args = small_config(
        tmp_path / f"ga{per_device}x{accumulation}",
        max_steps=1,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        max_grad_norm=0.0,
        alpha=0.6,
        beta=1.0,
        temperature=2.0,
        spectral_dynamics=False,
        learning_rate=1e-3,
    )
    capture = GradientCapture()
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=Dataset.from_list(rows),
        data_collator=pad_collate,
        callbacks=[capture],
    )
    trainer.train()
    log = next(log for log in trainer.state.log_history if "loss" in log)
    assert all(log[key] > 0 for key in ("ce_loss", "kd_loss", "freq_loss"))  # all three terms are on
    return capture.grads, trainer


class TestTraining:
    """Short runs: every logged component finite, a learnable task learnt, gradient accumulation exact."""

    @pytest.mark.parametrize("family", ["bert", "roberta"])
    def test_train_and_eval_logs_have_finite_components(self, tmp_path, family):
        trainer = make_trainer(
            tmp_path, family, eval_rows=make_token_rows(16, seed=1), eval_strategy="steps", eval_steps=4, max_steps=4
        )
        trainer.train()
        train_logs = [log for log in trainer.state.log_history if "loss" in log]
        assert len(train_logs) == 4
        for log in train_logs:
            for key in ("loss", "ce_loss", "kd_loss", "freq_loss"):
                assert math.isfinite(log[key]), (key, log)
            assert log["freq_loss"] > 0 and log["ce_loss"] > 0
        eval_logs = [log for log in trainer.state.log_history if "eval_loss" in log]
        assert len(eval_logs) == 1
        for key in ("eval_loss", "eval_ce_loss", "eval_kd_loss", "eval_freq_loss"):
            assert math.isfinite(eval_logs[0][key]) and eval_logs[0][key] > 0
        # the teacher stays frozen and in eval mode
        assert not trainer.teacher.training
        assert not any(p.requires_grad for p in trainer.teacher.parameters())

    def test_loss_decreases_on_learnable_task(self, tmp_path):
        # the teacher is random (its KD target is near uniform), so alpha=0.5 leaves the labels enough weight for the
        # student to learn the task (label = first token mod 3) in 40 steps; measured: CE 1.10 -> ~0.75 over 3 seeds
        trainer = make_trainer(
            tmp_path, rows=make_token_rows(128, seed=4), max_steps=40, learning_rate=1e-2, alpha=0.5
        )
        trainer.train()
        logs = [log for log in trainer.state.log_history if "loss" in log]
        assert len(logs) == 40

        def early_late(key):
            values = [log[key] for log in logs]
            return np.mean(values[:5]), np.mean(values[-5:])

        early, late = early_late("loss")
        assert late < 0.85 * early, (early, late)
        early, late = early_late("ce_loss")
        assert late < 0.9 * early, ("ce_loss", early, late)
        early, late = early_late("freq_loss")
        assert late < 0.5 * early, ("freq_loss", early, late)

    def test_gradient_accumulation_matches_one_big_batch(self, tmp_path):
        big, big_trainer = first_step_gradients(tmp_path, 8, 1)
        small, small_trainer = first_step_gradients(tmp_path, 4, 2)
        assert big_trainer.layer_map.pairs == small_trainer.layer_map.pairs
        assert big.keys() == small.keys() and len(big) > 10
        for name in big:
            torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-6, msg=name)
        # an unscaled sum of the two micro-batches would be twice as large: the comparison can tell
        total = lambda grads: sum(float(g.abs().sum()) for g in grads.values())  # noqa: E731
        assert total(small) == pytest.approx(total(big), rel=1e-3)


class TestLossTerms:
    """The total loss of one batch against an independent recomputation of its three terms."""

    @pytest.mark.parametrize("family", ["bert", "roberta"])
    def test_total_loss_of_one_batch_equals_independent_recomputation(self, tmp_path, family):
        alpha, tau, beta = 0.7, 2.0, 0.5
        rows = make_token_rows(16, seed=3)
        trainer = make_trainer(tmp_path, family, rows=rows, alpha=alpha, temperature=tau, beta=beta)
        layer_map = trainer.setup_layer_map()
        assert len(layer_map.pairs) == 2
        with torch.no_grad():  # random tiny nets agree almost perfectly; a sharper teacher makes the KD term sizeable
            trainer.teacher.classifier.out_proj.weight.mul_(
                40
            ) if family == "roberta" else trainer.teacher.classifier.weight.mul_(40)
        batch = pad_collate(rows[:8], pad_id=FAMILIES[family][1])
        assert (batch["attention_mask"] == 0).any()  # the batch has padding
        student, teacher = trainer.model, trainer.teacher
        student.eval()  # no dropout: the reference forward must see the same network
        with torch.no_grad():
            loss = trainer.compute_loss(student, dict(batch))
            s_out = student(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
            )
            t_out = teacher(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
            )
        s_logits, t_logits = s_out.logits.double(), t_out.logits.double()
        ce = F.cross_entropy(s_logits, batch["labels"])
        # KL(softmax(t/τ) ‖ softmax(s/τ)), batch mean, written with probabilities rather than log-targets
        p_t = F.softmax(t_logits / tau, dim=-1)
        kl = (p_t * (p_t.log() - F.log_softmax(s_logits / tau, dim=-1))).sum() / batch["labels"].shape[0]
        assert float(kl) > 1e-2
        mask = batch["attention_mask"].numpy()
        pair_losses = [
            ref_freq_loss(s_out.hidden_states[s].numpy(), t_out.hidden_states[t].numpy(), mask)
            for s, t in layer_map.pairs
        ]
        freq = float(np.mean(pair_losses))
        expected = (1 - alpha) * float(ce) + alpha * tau**2 * float(kl) + beta * freq
        assert float(loss) == pytest.approx(expected, rel=1e-5)
        logged = trainer._metrics["eval"]
        assert float(logged["ce_loss"][-1]) == pytest.approx(float(ce), rel=1e-5)
        assert float(logged["kd_loss"][-1]) == pytest.approx(tau**2 * float(kl), rel=1e-5)
        assert float(logged["freq_loss"][-1]) == pytest.approx(freq, rel=1e-5)


class TestLayerSelection:
    """The aligned layers: the spectral choice, recorded, and chosen without touching the run's RNG."""

    @pytest.mark.parametrize("strategy", ["topk", "uniform"])
    def test_selected_layers_are_the_spectral_choice_and_are_recorded(self, tmp_path, strategy):
        rows = make_token_rows(48, seed=5)
        trainer = make_trainer(tmp_path, rows=rows, selection_samples=40, layer_selection=strategy, max_steps=1)
        trainer.train()
        # selection_samples = a random sample of 40 of the 48 rows, drawn with the run's seed
        sample = sorted(torch.randperm(48, generator=torch.Generator().manual_seed(0))[:40].tolist())
        intensity = independent_intensity(trainer.teacher, [rows[i] for i in sample], 0)
        assert intensity != pytest.approx(independent_intensity(trainer.teacher, rows[:40], 0), rel=1e-6)
        expected = select_layers(intensity, 2, strategy)
        assert trainer.layer_map.teacher_layers == expected
        assert trainer.layer_map.student_layers == [1, 2]
        assert trainer.layer_map.strategy == strategy
        np.testing.assert_allclose(trainer.layer_map.teacher_intensity, intensity, rtol=1e-4)
        if strategy == "uniform":
            assert expected == [2, 4]
        out = tmp_path / "out"
        with open(out / "layer_map.json") as handle:
            recorded = json.load(handle)
        assert recorded["teacher_layers"] == expected and recorded["student_layers"] == [1, 2]
        assert recorded["pairs"] == [[1, expected[0]], [2, expected[1]]]
        profile = SpectralProfile.load(out / "spectral_profile.json")
        assert profile.num_samples == 40 and profile.num_layers == 5
        np.testing.assert_allclose(profile.intensity.numpy(), intensity, rtol=1e-4)
        assert profile.metadata["selected_layers"] == expected
        png = out / "layer_intensity.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    def test_automatic_selection_and_dynamics_do_not_consume_the_runs_random_numbers(self, tmp_path):
        """Auto-selected layers, or the same layers given by hand, with the dynamics callback on or off: same run.

        The selection pass and the dynamics probes iterate DataLoaders, which draw seeds from the global generator;
        without isolation they would shift the Trainer's shuffling and dropout.
        """
        rows = make_token_rows(64, seed=3)
        eval_rows = make_token_rows(16, seed=4)
        auto = make_trainer(tmp_path / "auto", rows=rows, max_steps=6)
        before = torch.random.get_rng_state()
        layer_map = auto.setup_layer_map()
        assert torch.equal(before, torch.random.get_rng_state())
        auto.train()
        manual = make_trainer(tmp_path / "manual", rows=rows, max_steps=6, teacher_layers=layer_map.teacher_layers)
        manual.train()
        # evaluation itself draws from the generator (the Trainer's eval DataLoader): compare the callback on vs off.
        # Each trainer is built right before it trains (Trainer.__init__ seeds the global generator).
        runs = {}
        for name, on in (("watched", True), ("unwatched", False)):
            runs[name] = make_trainer(
                tmp_path / name,
                rows=rows,
                eval_rows=eval_rows,
                max_steps=6,
                eval_strategy="steps",
                eval_steps=2,
                spectral_dynamics=on,
                dynamics_samples=8,
            )
            runs[name].train()
        watched, unwatched = runs["watched"], runs["unwatched"]
        (callback,) = [c for c in watched.callback_handler.callbacks if type(c).__name__ == "SpectralDynamicsCallback"]
        assert [r["step"] for r in callback.records] == [0, 2, 4, 6]

        def losses(trainer):
            return [
                (r["ce_loss"], r["freq_loss"]) for r in trainer.state.log_history if "ce_loss" in r and "loss" in r
            ]

        assert manual.layer_map.teacher_layers == layer_map.teacher_layers
        assert len(losses(auto)) == 6 and len(losses(watched)) == 6
        assert losses(auto) == losses(manual)
        assert losses(watched) == losses(unwatched)
        for a, b in zip(watched.model.parameters(), unwatched.model.parameters(), strict=True):
            assert torch.equal(a, b)


class TestEvaluation:
    """evaluate() / predict(): the student's metrics and the loss components under the eval_ prefix."""

    def test_compute_metrics_pass_through_and_eval_components(self, tmp_path):
        trainer = make_trainer(
            tmp_path, eval_rows=make_token_rows(24, seed=7), prediction_loss_only=False, max_steps=2
        )
        trainer.compute_metrics = accuracy
        trainer.train()
        metrics = trainer.evaluate()
        assert 0.0 <= metrics["eval_accuracy"] <= 1.0
        for key in ("eval_loss", "eval_ce_loss", "eval_kd_loss", "eval_freq_loss"):
            assert math.isfinite(metrics[key])
        # the accuracy is the student's, on its own predictions
        predictions = trainer.predict(Dataset.from_list(make_token_rows(24, seed=7)))
        assert metrics["eval_accuracy"] == pytest.approx(accuracy(predictions)["accuracy"])
        assert predictions.predictions.shape == (24, NUM_LABELS)

    def test_evaluate_without_train(self, tmp_path):
        trainer = make_trainer(tmp_path, eval_rows=make_token_rows(16, seed=8))
        metrics = trainer.evaluate()
        for key in ("eval_loss", "eval_ce_loss", "eval_kd_loss", "eval_freq_loss"):
            assert math.isfinite(metrics[key])
        assert metrics["eval_freq_loss"] > 0
        assert len(trainer.layer_map.teacher_layers) == 2  # the selection ran on first use
        assert os.path.isfile(tmp_path / "out" / "layer_map.json")
