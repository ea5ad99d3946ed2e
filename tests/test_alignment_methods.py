"""Issue 24: the norm-free spectral entropy, the entropy / last selections, and the alignment terms besides the
frequency term (hidden-state MSE, MiniLM attention transfer, TinyBERT projection, two-phase order), each against an
independent float64 numpy reference."""

import math

import numpy as np
import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset
from test_trainer_seams import build as build_seams_trainer

from hf_spectralkd import (
    SpectralDistillationConfig,
    SpectralDistillationTrainer,
    SpectralProfile,
    attention_transfer_loss,
    hidden_mse_loss,
    select_layers,
    spectral_entropy,
    spectral_intensity,
)
from hf_spectralkd.feature_losses import relation_kl_loss
from hf_spectralkd.layer_map import LayerSelection, choose_init_layers, pair_layers


# ------------------------------------------------------------------------------------ references (numpy, float64)
def numpy_entropy(x, mask=None):
    """docs/method.md "Spectral entropy": standardise each real token over D, |DFT/D|² averaged over real tokens,
    bins 1..D-1 normalised, entropy / log(D-1). Full complex DFT (no rfft mirroring)."""
    x = np.asarray(x, dtype=np.float64)
    n, length, d = x.shape
    m = np.ones((n, length)) if mask is None else np.asarray(mask, dtype=np.float64)
    z = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    power = np.abs(np.fft.fft(z, axis=-1) / d) ** 2  # (N, L, D)
    p = (power * m[..., None]).sum((0, 1)) / m.sum()
    p = p[1:] / p[1:].sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(d - 1))


def _numpy_relation(a, b, n, real, h, heads):
    """softmax(a_h · b_hᵀ / √d) of row ``n``'s real tokens, relation head ``h`` of ``heads``."""
    d = a.shape[-1] // heads
    a_h, b_h = a[n][real][:, h * d:(h + 1) * d], b[n][real][:, h * d:(h + 1) * d]
    scores = a_h @ b_h.T / math.sqrt(d)
    scores -= scores.max(1, keepdims=True)
    return np.exp(scores) / np.exp(scores).sum(1, keepdims=True)


def numpy_relation_kl(sa, sb, ta, tb, mask, heads):
    sa, sb, ta, tb = (np.asarray(t, dtype=np.float64) for t in (sa, sb, ta, tb))
    m = np.asarray(mask, dtype=bool)
    total, count = 0.0, 0
    for n in range(sa.shape[0]):
        real = np.flatnonzero(m[n])
        for h in range(heads):
            ps, pt = _numpy_relation(sa, sb, n, real, h, heads), _numpy_relation(ta, tb, n, real, h, heads)
            total += float((pt * (np.log(pt) - np.log(ps))).sum())  # summed over keys and real queries
            count += len(real)
    return total / count


# ------------------------------------------------------------------------------------ spectral entropy
def test_spectral_entropy_equals_an_independent_numpy_implementation_with_padding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 10, generator=g) * torch.linspace(0.5, 3, 10)  # an uneven spectrum
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    got = spectral_entropy([x, 2 * x + 1], mask)
    want = numpy_entropy(x.numpy(), mask.numpy())
    assert got.shape == (2,)
    assert float(got[0]) == pytest.approx(want, abs=1e-5)
    assert 0.0 < want < 1.0
    # norm-free: a scaled and shifted copy has the same entropy, while the intensity scales with it
    assert float(got[1]) == pytest.approx(want, abs=1e-5)
    intensity = spectral_intensity([x, 2 * x], mask)
    assert float(intensity[1]) == pytest.approx(2 * float(intensity[0]), rel=1e-5)
    # padded rows change nothing: the same real tokens padded further
    longer = torch.cat([x, torch.randn(3, 5, 10, generator=g)], 1)
    longer_mask = torch.cat([mask, torch.zeros(3, 5, dtype=mask.dtype)], 1)
    assert float(spectral_entropy(longer, longer_mask)[0]) == pytest.approx(want, abs=1e-5)


def test_a_flat_spectrum_has_entropy_one_and_a_single_frequency_nearly_zero():
    d = 16
    t = torch.arange(d, dtype=torch.float32)
    single = torch.cos(2 * math.pi * 3 * t / d).reshape(1, 1, d)  # bins 3 and 13 only
    assert float(spectral_entropy(single)[0]) == pytest.approx(math.log(2) / math.log(d - 1), abs=1e-5)
    impulse = torch.zeros(1, 1, d)
    impulse[0, 0, 0] = 1.0  # after centring: flat over bins 1..D-1
    assert float(spectral_entropy(impulse)[0]) == pytest.approx(1.0, abs=1e-5)


def test_the_profile_accumulates_entropy_batch_by_batch_and_saves_it(tmp_path):
    g = torch.Generator().manual_seed(1)
    layers = [torch.randn(6, 5, 8, generator=g) * (i + 1) + i for i in range(3)]
    mask = torch.ones(6, 5, dtype=torch.long)
    mask[4:, 3:] = 0
    profile = SpectralProfile()
    profile.update([h[:2] for h in layers], mask[:2]).update([h[2:] for h in layers], mask[2:])
    want = [numpy_entropy(h.numpy(), mask.numpy()) for h in layers]
    assert profile.entropy.tolist() == pytest.approx(want, abs=1e-5)
    path = profile.save(tmp_path / "profile.json")
    loaded = SpectralProfile.load(path)
    assert loaded.entropy.tolist() == pytest.approx(want, abs=1e-5)
    assert loaded.to_dict()["entropy"] == pytest.approx(want, abs=1e-5)
    # a profile saved before the entropy existed loads without it and says so when asked to rank by it
    import json

    data = json.loads(open(path).read())
    data.pop("power_sums"), data.pop("entropy")
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = SpectralProfile.load(tmp_path / "old.json")
    assert old.entropy is None and old.to_dict()["entropy"] is None
    with pytest.raises(ValueError, match="strategy='entropy' ranks layers by spectral entropy"):
        old.select(1, "entropy")


# ------------------------------------------------------------------------------------ selections
def test_entropy_and_last_selections():
    intensity = [0.9, 0.1, 0.8, 0.2, 0.7]
    entropy = [0.0, 0.95, 0.10, 0.90, 0.50]
    assert select_layers(intensity, 2, "topk") == [2, 4]
    assert select_layers(intensity, 2, "entropy", entropy=entropy) == [1, 3]
    assert select_layers(intensity, 2, "last") == [3, 4]
    with pytest.raises(ValueError, match="pass entropy="):
        select_layers(intensity, 2, "entropy")
    # pairs: entropy picks by entropy; "last" without a count is one pair, last student block to last teacher block
    chosen = pair_layers(LayerSelection(layer_selection="entropy"), 2, 4, intensity, entropy)
    assert chosen.pairs == [(1, 1), (2, 3)] and chosen.teacher_entropy == entropy
    last = pair_layers(LayerSelection(layer_selection="last"), 3, 4, intensity)
    assert last.pairs == [(3, 4)]
    assert pair_layers(LayerSelection(layer_selection="last", num_aligned_layers=2), 3, 4, intensity).pairs == [
        (2, 3), (3, 4)]
    # student init layers by entropy / last
    assert choose_init_layers("entropy", 2, 4, intensity, entropy=entropy) == [1, 3]
    assert choose_init_layers("last", 2, 4) == [3, 4]


# ------------------------------------------------------------------------------------ loss functions
def test_hidden_mse_is_the_mean_over_real_tokens_and_units_and_ignores_padding():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 5, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    m = mask.numpy().astype(bool)
    want = float(((s.numpy() - t.numpy()) ** 2)[m].mean())
    assert float(hidden_mse_loss(s, t, mask)) == pytest.approx(want, rel=1e-6)
    # padding values and amount do not matter
    s2, t2 = s.clone(), t.clone()
    s2[1, 2:] = 100.0
    assert float(hidden_mse_loss(s2, t2, mask)) == pytest.approx(want, rel=1e-6)
    # widths differ: the wider side is average-pooled to the narrower (pairs of adjacent units)
    wide = torch.randn(2, 5, 12, generator=g)
    pooled = wide.reshape(2, 5, 6, 2).mean(-1)
    assert float(hidden_mse_loss(s, wide, mask)) == pytest.approx(float(hidden_mse_loss(s, pooled, mask)), rel=1e-6)


def test_relation_kl_equals_numpy_with_different_head_counts_and_widths():
    g = torch.Generator().manual_seed(3)
    sq, sk, sv = (torch.randn(2, 6, 8, generator=g) for _ in range(3))  # student width 8
    tq, tk, tv = (torch.randn(2, 6, 12, generator=g) for _ in range(3))  # teacher width 12
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    for heads in (1, 2, 4):
        got = relation_kl_loss(sq, sk, tq, tk, mask, heads)
        assert float(got) == pytest.approx(numpy_relation_kl(sq, sk, tq, tk, mask, heads), rel=1e-5)
    total = attention_transfer_loss((sq, sk, sv), (tq, tk, tv), mask, heads=2)
    want = numpy_relation_kl(sq, sk, tq, tk, mask, 2) + numpy_relation_kl(sv, sv, tv, tv, mask, 2)
    assert float(total) == pytest.approx(want, rel=1e-5)
    # the same relations give 0
    assert float(relation_kl_loss(tq, tk, tq, tk, mask, 2)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="cannot be split into 3 relation heads"):
        relation_kl_loss(sq, sk, tq, tk, mask, 3)


# ------------------------------------------------------------------------------------ the trainer
def build(tmp_path, **config):
    """The seams tests' trainer (a dropout-free 2 x 16 student, a 4 x 32 teacher, 32 token rows) with ``config``."""
    return build_seams_trainer(tmp_path, config=config)


def _batch():
    return pad_collate(make_token_rows(6, seed=5))


def _reference_parts(trainer, batch):
    """KD term and both models' outputs computed outside the trainer."""
    student, teacher = trainer.model.eval(), trainer.teacher
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        s = student(**inputs, output_hidden_states=True)
        t = teacher(**inputs, output_hidden_states=True)
    alpha = trainer.args.alpha
    kd = SpectralDistillationTrainer.logit_kd_loss(s.logits, t.logits, trainer.args.temperature)
    ce = torch.nn.functional.cross_entropy(s.logits, batch["labels"])
    return s, t, float((1 - alpha) * ce + alpha * kd)


def test_alignment_mse_is_the_hidden_mse_of_the_pairs(tmp_path):
    trainer = build(tmp_path, alignment="mse", teacher_layers=[2, 4], beta=0.5)
    trainer.setup_layer_map()
    batch = _batch()
    s, t, logit_term = _reference_parts(trainer, batch)
    mask = batch["attention_mask"].numpy().astype(bool)
    mses = []
    for a, b in trainer.layer_map.pairs:
        hs, ht = s.hidden_states[a].numpy(), t.hidden_states[b].numpy()
        ht = ht.reshape(*ht.shape[:2], 16, 2).mean(-1)  # teacher 32 wide pooled to the student's 16
        mses.append(((hs - ht) ** 2)[mask].mean())
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model.eval(), batch)
    assert float(loss) == pytest.approx(logit_term + 0.5 * float(np.mean(mses)), rel=1e-5)
    assert trainer.alignment_log_name == "align_loss"
    assert float(trainer._metrics["eval"]["align_loss"][-1]) == pytest.approx(float(np.mean(mses)), rel=1e-5)


def test_alignment_attention_is_minilm_relations_of_the_real_qkv(tmp_path):
    trainer = build(tmp_path, alignment="attention", teacher_layers=[2, 4], beta=0.5)
    assert trainer.relation_heads == 2  # the student's attention heads
    trainer.setup_layer_map()
    batch = _batch()
    s, t, logit_term = _reference_parts(trainer, batch)
    mask = batch["attention_mask"]
    student_bert, teacher_bert = trainer.model.bert, trainer.teacher.bert

    def qkv(bert, hidden_states, layer):  # BERT is post-LN: block l's attention reads hidden_states[l - 1]
        attn = bert.encoder.layer[layer - 1].attention.self
        x = hidden_states[layer - 1]
        with torch.no_grad():
            return attn.query(x), attn.key(x), attn.value(x)

    terms = []
    for a, b in trainer.layer_map.pairs:
        (sq, sk, sv), (tq, tk, tv) = qkv(student_bert, s.hidden_states, a), qkv(teacher_bert, t.hidden_states, b)
        terms.append(numpy_relation_kl(sq, sk, tq, tk, mask, 2) + numpy_relation_kl(sv, sv, tv, tv, mask, 2))
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model.eval(), batch)
    assert float(loss) == pytest.approx(logit_term + 0.5 * float(np.mean(terms)), rel=1e-4)
    # trains: the logged term is finite and present at every step
    trainer.model.train()
    trainer.train()
    logged = [e["align_loss"] for e in trainer.state.log_history if "align_loss" in e]
    assert len(logged) == 4 and all(math.isfinite(v) and v > 0 for v in logged)


def test_attention_projections_are_found_once_not_on_every_step(tmp_path, monkeypatch):
    """The adapter walks a block's modules for its Q/K/V once per model and layer; every step reuses them (the
    hooks still record each step's projections: the loss changes as the student trains)."""
    trainer = build(tmp_path, alignment="attention", teacher_layers=[2, 4], beta=0.5)
    calls = []
    for adapter in {id(trainer.student_adapter): trainer.student_adapter,
                    id(trainer.teacher_adapter): trainer.teacher_adapter}.values():
        original = adapter.attention_projections
        monkeypatch.setattr(adapter, "attention_projections",
                            lambda model, layer, original=original: calls.append(layer) or original(model, layer))
    trainer.train()
    logged = [e["align_loss"] for e in trainer.state.log_history if "align_loss" in e]
    assert len(logged) == 4 and len(set(logged)) > 1
    pairs = trainer.layer_map.pairs
    assert sorted(calls) == sorted([s for s, _ in pairs] + [t for _, t in pairs])  # one lookup per model and layer


def test_projection_linear_maps_student_width_trains_and_is_not_saved(tmp_path):
    trainer = build(tmp_path, alignment="mse", projection="linear", teacher_layers=[2, 4], beta=1.0,
                    save_strategy="no")
    trainer.setup_layer_map()
    assert [tuple(p.weight.shape) for p in trainer.projections] == [(32, 16), (32, 16)]
    batch = _batch()
    s, t, logit_term = _reference_parts(trainer, batch)
    mask = batch["attention_mask"].numpy().astype(bool)
    mses = []
    with torch.no_grad():
        for i, (a, b) in enumerate(trainer.layer_map.pairs):
            mapped = trainer.projections[i](s.hidden_states[a]).numpy()
            mses.append(((mapped - t.hidden_states[b].numpy()) ** 2)[mask].mean())
        loss = trainer.compute_loss(trainer.model.eval(), batch)
    assert float(loss) == pytest.approx(logit_term + float(np.mean(mses)), rel=1e-5)
    before = [p.detach().clone() for p in trainer.projections.parameters()]
    trainer.model.train()
    trainer.train()
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in in_optimizer for p in trainer.projections.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.projections.parameters(), strict=True))
    trainer.save_model()
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert not any("projection" in k for k in saved) and set(saved) == set(trainer.model.state_dict())


def test_the_projection_is_seeded_and_leaves_the_runs_random_numbers_alone(tmp_path):
    a = build(tmp_path / "a", alignment="mse", projection="linear", teacher_layers=[4], num_aligned_layers=1)
    torch.manual_seed(123)
    a.setup_layer_map()
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(1))
    b = build(tmp_path / "b", alignment="mse", projection="linear", teacher_layers=[4], num_aligned_layers=1)
    b.setup_layer_map()
    assert torch.equal(a.projections[0].weight, b.projections[0].weight)


def test_two_phase_order_trains_the_alignment_alone_then_the_logits_alone(tmp_path):
    trainer = build(tmp_path, alignment="mse", teacher_layers=[2, 4], beta=0.5, alignment_phase=0.5, max_steps=4)
    trainer.setup_layer_map()
    batch = _batch()
    s, t, logit_term = _reference_parts(trainer, batch)
    model = trainer.model  # dropout 0: train and eval mode give the same numbers
    trainer.state.max_steps = 4
    with torch.no_grad():
        full = float(trainer.compute_loss(model.eval(), batch))  # evaluation: always the full loss
        model.train()  # the phases apply to training steps
        trainer.state.global_step = 1
        align_only = float(trainer.compute_loss(model, batch))
        trainer.state.global_step = 2
        logits_only = float(trainer.compute_loss(model, batch))
    assert logits_only == pytest.approx(logit_term, rel=1e-5)
    assert align_only == pytest.approx(full - logit_term, rel=1e-5) and align_only > 0
    trainer.state.global_step = 0
    model.train()
    trainer.train()
    aligned = [e for e in trainer.state.log_history if "align_loss" in e]
    assert [e["step"] for e in aligned] == [1, 2]  # steps 3 and 4 compute no alignment term


@pytest.mark.parametrize(
    "config, message",
    [
        ({"alignment": "cosine"}, "alignment must be one of frequency, mse, attention"),
        ({"projection": "mlp"}, "projection must be one of none, linear"),
        ({"alignment": "attention", "projection": "linear"}, "set projection='none'"),
        ({"alignment_phase": 1.0}, r"alignment_phase must be in \[0, 1\)"),
        ({"alignment_phase": 0.5, "beta": 0.0}, "beta is 0"),
        ({"attention_relation_heads": 0}, "attention_relation_heads must be a positive integer"),
    ],
)
def test_invalid_alignment_options_are_refused_by_the_config(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        SpectralDistillationConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **config)


def test_attention_alignment_refuses_the_cache_and_heads_that_do_not_divide(tmp_path):
    with pytest.raises(ValueError, match="teacher cache does not store"):
        SpectralDistillationTrainer(
            model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=tiny_bert(num_layers=4, hidden=32),
            args=small_config(tmp_path, alignment="attention", spectral_dynamics=False),
            train_dataset=Dataset.from_list(make_token_rows(8)), data_collator=pad_collate,
            teacher_cache=str(tmp_path / "cache"),
        )
    with pytest.raises(ValueError, match="3 relation heads, which does not divide the student's width 16"):
        build(tmp_path, alignment="attention", attention_relation_heads=3)
