"""Teacher cache: float16 memory-mapped teacher outputs, fingerprinted, matching the live teacher."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert

import hf_spectralkd.teacher_cache as tc
from hf_spectralkd import SpectralDistillationTrainer
from hf_spectralkd.constants import CACHE_META_FILENAME

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
        args=small_config(tmp_path, **values),
        train_dataset=dataset,
        data_collator=id_collate,
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
    with open(tmp_path / "cache" / CACHE_META_FILENAME, encoding="utf-8") as handle:
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
        torch.testing.assert_close(
            cached.hidden_states[layer][mask], live.hidden_states[layer][mask], rtol=2e-3, atol=4e-3
        )
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


def train_live_and_cached(tmp_path, make_trainer) -> tuple:
    """``(live, cached)`` training logs of two trainers from ``make_trainer(folder, dataset)``, the second reading
    the teacher cache (its teacher may not run)."""
    dataset = _dataset()
    reference = make_trainer(tmp_path / "live", dataset)
    reference.train()
    trainer = make_trainer(tmp_path / "cached", dataset)
    tc.enable_teacher_cache(trainer, str(tmp_path / "cache"))

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran during training although its outputs are cached")

    trainer.teacher.forward = no_teacher
    trainer.train()
    live_logs = [e for e in reference.state.log_history if "loss" in e]
    cached_logs = [e for e in trainer.state.log_history if "loss" in e]
    assert len(cached_logs) == len(live_logs) == 3
    return live_logs, cached_logs


def test_training_reads_the_cache_instead_of_the_teacher(tmp_path):
    live_logs, cached_logs = train_live_and_cached(tmp_path, _trainer)
    for live, cached in zip(live_logs, cached_logs, strict=True):
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


@pytest.fixture(scope="module")
def text_teacher(tmp_path_factory):
    """A tiny BERT teacher with the packaged MiniLM tokenizer, and 24 CLINC150 rows."""
    from conftest import SHARED_DATA
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hf_spectralkd.loading import packaged_minilm_path

    root = tmp_path_factory.mktemp("cache_cli")
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    with (
        open(os.path.join(SHARED_DATA, "train.jsonl"), encoding="utf-8") as src,
        open(root / "train.jsonl", "w") as dst,
    ):
        for _, line in zip(range(24), src, strict=False):  # the first 24 lines
            dst.write(line)
    return root


def test_cache_teacher_command_builds_reuses_and_feeds_the_trainer(text_teacher, capsys, monkeypatch):
    import datasets
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from hf_spectralkd.cli import main
    from hf_spectralkd.commands.cache_teacher import tokenize_split

    root = text_teacher
    argv = [
        "cache-teacher",
        "--teacher",
        str(root / "teacher"),
        "--data",
        str(root / "train.jsonl"),
        "--layers",
        "2",
        "4",
        "--output",
        str(root / "cache"),
        "--max-length",
        "32",
        "--batch-size",
        "8",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "teacher cache built: 24 examples" in first and "per 1,000 examples" in first
    assert main(argv) == 0
    assert "teacher cache up to date: 24 examples" in capsys.readouterr().out

    # the trainer, given the same tokenization, finds the command's cache up to date (no rebuild)
    built = []
    monkeypatch.setattr(tc, "build_teacher_cache", lambda *a, **k: built.append(1))
    tokenizer = AutoTokenizer.from_pretrained(root / "teacher")
    raw = datasets.load_dataset("json", data_files=str(root / "train.jsonl"), split="train")
    train = tokenize_split(tokenizer, raw, "text", max_length=32)
    labels = sorted(set(raw["label"]))[:3]
    train = train.add_column("labels", [labels.index(x) if x in labels else 0 for x in raw["label"]])
    trainer = SpectralDistillationTrainer(
        model=_tiny_student(tokenizer),
        teacher_model=str(root / "teacher"),
        train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
        args=small_config(root, teacher_layers=[2, 4], spectral_dynamics=False, max_steps=1),
    )
    cache = tc.enable_teacher_cache(trainer, str(root / "cache"))
    assert built == [] and len(cache) == 24
    trainer.teacher.forward = lambda *a, **k: (_ for _ in ()).throw(AssertionError("teacher ran"))
    trainer.train()
    assert [e for e in trainer.state.log_history if "freq_loss" in e][0]["freq_loss"] > 0


def _tiny_student(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
    )
    return BertForSequenceClassification(config)


def test_cache_teacher_command_checks_before_work(text_teacher, capsys):
    from hf_spectralkd.cli import main

    root = text_teacher
    out = root / "bad_cache"
    code = main(
        [
            "cache-teacher",
            "--teacher",
            str(root / "teacher"),
            "--data",
            str(root / "train.jsonl"),
            "--layers",
            "2",
            "7",
            "--output",
            str(out),
        ]
    )
    assert code == 2 and "--layers [7] out of range: the teacher has 4 blocks" in capsys.readouterr().err
    assert not out.exists()
    code = main(
        [
            "cache-teacher",
            "--teacher",
            str(root / "teacher"),
            "--data",
            str(root / "missing.jsonl"),
            "--layers",
            "2",
            "--output",
            str(out),
        ]
    )
    assert code == 2 and "no such file" in capsys.readouterr().err and not out.exists()
    # an existing directory that is not a cache is never replaced
    (root / "precious").mkdir()
    (root / "precious" / "notes.txt").write_text("keep me")
    code = main(
        [
            "cache-teacher",
            "--teacher",
            str(root / "teacher"),
            "--data",
            str(root / "train.jsonl"),
            "--layers",
            "2",
            "--output",
            str(root / "precious"),
        ]
    )
    assert code == 2 and "is not a teacher cache" in capsys.readouterr().err
    assert os.listdir(root / "precious") == ["notes.txt"]
