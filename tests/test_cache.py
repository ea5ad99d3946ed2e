"""Teacher cache: float16 memory-mapped teacher outputs, fingerprinted, matching the live teacher."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert

import hf_spectralkd.teacher_cache as tc
from hf_spectralkd import SpectralDistillationTrainer

TEACHER_LAYERS = [2, 4]


def id_collate(batch):
    """pad_collate that passes the id column through when the rows have it (as DataCollatorWithPadding does)."""
    out = pad_collate(batch)
    if "example_id" in batch[0]:
        out["example_id"] = torch.tensor([x["example_id"] for x in batch])
    return out


def _dataset(n=40, seed=0):
    from datasets import Dataset

    return tc.add_example_ids(Dataset.from_list(make_token_rows(n, seed=seed)))


def _trainer(tmp_path, dataset, teacher=None, **overrides):
    values = dict(spectral_dynamics=False, teacher_layers=TEACHER_LAYERS, max_steps=3, per_device_train_batch_size=8)
    values.update(overrides)
    return SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        teacher_model=teacher if teacher is not None else tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, **values), train_dataset=dataset, data_collator=id_collate,
    )


def test_cache_layout_real_tokens_float16(tmp_path):
    dataset = _dataset()
    trainer = _trainer(tmp_path, dataset)
    cache = tc.enable_teacher_cache(trainer, str(tmp_path / "cache"))
    real_tokens = sum(sum(m) for m in dataset["attention_mask"])
    assert cache.hidden.shape == (real_tokens, 2, 32) and cache.hidden.dtype == np.float16
    assert cache.logits.shape == (40, 3) and cache.logits.dtype == np.float16
    assert isinstance(cache.hidden, np.memmap) and isinstance(cache.logits, np.memmap)
    assert len(cache) == 40 and cache.teacher_layers == TEACHER_LAYERS
    with open(tmp_path / "cache" / tc.META_FILENAME, encoding="utf-8") as handle:
        meta = json.load(handle)
    assert set(meta["fingerprint"]) == {"version", "teacher", "data", "teacher_layers", "id_column"}
    assert meta["num_tokens"] == real_tokens


def test_cached_losses_match_the_live_teacher(tmp_path):
    dataset = _dataset()
    trainer = _trainer(tmp_path, dataset)
    cache = tc.enable_teacher_cache(trainer, str(tmp_path / "cache"))
    # a shuffled batch, not in cache order
    batch = id_collate([dataset[i] for i in (17, 3, 31, 8, 0, 22)])
    inputs = {k: v for k, v in batch.items() if k != "example_id"}
    with torch.no_grad():
        live = trainer.teacher_adapter.forward(trainer.teacher, inputs, output_hidden_states=True)
    cached = cache.teacher_outputs(batch)
    torch.testing.assert_close(cached.logits, live.logits, rtol=2e-3, atol=2e-3)
    mask = batch["attention_mask"].bool()
    for layer in TEACHER_LAYERS:
        torch.testing.assert_close(cached.hidden_states[layer][mask], live.hidden_states[layer][mask], rtol=2e-3, atol=4e-3)
        assert cached.hidden_states[layer][~mask].abs().sum() == 0  # padding was never stored
    # the three loss terms through compute_loss: cached vs live
    model = trainer.model.train()
    terms = {}
    for name, use_cache in (("live", False), ("cached", True)):
        trainer.teacher_cache = cache if use_cache else None
        with torch.no_grad():
            trainer.compute_loss(model, dict(batch) if use_cache else inputs)
        terms[name] = {k: float(trainer._metrics["train"][k][-1]) for k in ("ce_loss", "kd_loss", "freq_loss")}
    assert terms["cached"]["ce_loss"] == terms["live"]["ce_loss"]
    assert terms["cached"]["freq_loss"] == pytest.approx(terms["live"]["freq_loss"], rel=2e-3)
    assert terms["cached"]["kd_loss"] == pytest.approx(terms["live"]["kd_loss"], rel=2e-2, abs=1e-6)


def test_training_reads_the_cache_instead_of_the_teacher(tmp_path):
    dataset = _dataset()
    reference = _trainer(tmp_path / "live", dataset)
    reference.train()
    trainer = _trainer(tmp_path / "cached", dataset)
    tc.enable_teacher_cache(trainer, str(tmp_path / "cache"))

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran during training although its outputs are cached")

    trainer.teacher.forward = no_teacher
    trainer.train()
    live_logs = [e for e in reference.state.log_history if "loss" in e]
    cached_logs = [e for e in trainer.state.log_history if "loss" in e]
    assert len(cached_logs) == len(live_logs) == 3
    for live, cached in zip(live_logs, cached_logs):
        for key in ("loss", "ce_loss", "freq_loss"):
            assert cached[key] == pytest.approx(live[key], rel=5e-3), key


def test_fingerprint_reuses_and_rebuilds(tmp_path, monkeypatch):
    directory = str(tmp_path / "cache")
    dataset = _dataset()
    first = tc.enable_teacher_cache(_trainer(tmp_path, dataset), directory)
    built = []
    real_build = tc.build_teacher_cache
    monkeypatch.setattr(tc, "build_teacher_cache", lambda *a, **k: built.append(1) or real_build(*a, **k))
    # same teacher, data and layers: reused
    again = tc.enable_teacher_cache(_trainer(tmp_path, dataset), directory)
    assert built == [] and again.fingerprint == first.fingerprint
    # teacher weights changed -> rebuilt
    teacher = tiny_bert(num_layers=4, hidden=32, seed=0)
    with torch.no_grad():
        teacher.classifier.weight.add_(0.01)
    changed = tc.enable_teacher_cache(_trainer(tmp_path, dataset, teacher=teacher), directory)
    assert built == [1] and changed.fingerprint["teacher"] != first.fingerprint["teacher"]
    # data changed -> rebuilt
    other = tc.enable_teacher_cache(_trainer(tmp_path, _dataset(seed=5)), directory)
    assert built == [1, 1] and other.fingerprint["data"] != first.fingerprint["data"]
    # aligned layers changed -> rebuilt (and a stale cache is an error when rebuilding is off)
    with pytest.raises(ValueError, match=r"stale \(teacher_layers changed\)"):
        tc.enable_teacher_cache(_trainer(tmp_path, _dataset(seed=5), teacher_layers=[3, 4]), directory, rebuild=False)
    layers = tc.enable_teacher_cache(_trainer(tmp_path, _dataset(seed=5), teacher_layers=[3, 4]), directory)
    assert built == [1, 1, 1] and layers.teacher_layers == [3, 4]


def test_augmenting_or_unkeyed_pipelines_are_refused(tmp_path):
    dataset = _dataset()
    augmented = dataset.with_transform(lambda batch: batch)
    with pytest.raises(ValueError, match="on-the-fly transform .* augmenting pipeline"):
        tc.enable_teacher_cache(_trainer(tmp_path, augmented), str(tmp_path / "a"))
    with pytest.raises(ValueError, match="no 'example_id' column .*add_example_ids"):
        tc.enable_teacher_cache(_trainer(tmp_path, dataset.remove_columns("example_id")), str(tmp_path / "b"))
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")
    # inputs that differ from the cached ones (e.g. random token masking in a collator) are caught at lookup
    cache = tc.enable_teacher_cache(_trainer(tmp_path, dataset), str(tmp_path / "c"))
    batch = id_collate([dataset[i] for i in range(4)])
    batch["input_ids"][2, 1] = (batch["input_ids"][2, 1] + 1) % 60
    with pytest.raises(ValueError, match="inputs of example 2 differ .* augmenting"):
        cache.teacher_outputs(batch)
