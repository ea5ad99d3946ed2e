"""Teacher cache for logit KD (beta = 0): the teacher's logits only, no hidden states, never reused by a run that
aligns layers."""

import json
import os

import pytest
import torch
from conftest import small_config, tiny_bert
from test_cache import (
    TEACHER_LAYERS,
    _dataset,
    _tiny_student,
    id_collate,
    text_teacher,  # noqa: F401  (a tiny teacher saved with the MiniLM tokenizer)
    train_live_and_cached,
)
from test_pipeline import workspace  # noqa: F401  (the tiny pipeline workspace fixture)

import hf_spectralkd.teacher_cache as tc
from hf_spectralkd import SpectralDistillationTrainer
from hf_spectralkd.constants import CACHE_META_FILENAME

BATCH_ROWS = (17, 3, 31, 8, 0, 22)  # a shuffled batch, not in cache order


def _trainer(tmp_path, dataset, **overrides):
    """A logit-KD trainer (beta = 0, no layers given) unless ``overrides`` say otherwise."""
    values = dict(spectral_dynamics=False, beta=0.0, max_steps=3, per_device_train_batch_size=8)
    values.update(overrides)
    return SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, **values),
        train_dataset=dataset,
        data_collator=id_collate,
    )


def _loss(trainer, batch) -> torch.Tensor:
    with torch.no_grad():
        return trainer.compute_loss(trainer.model.train(), dict(batch))


def _forbid_teacher(trainer):
    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran although its logits are cached")

    trainer.teacher.forward = no_teacher


def test_beta_zero_cache_gives_the_live_loss(tmp_path):
    dataset = _dataset()
    batch = id_collate([dataset[i] for i in BATCH_ROWS])
    live_trainer = _trainer(tmp_path / "live", dataset)
    live_trainer.setup_layer_map()
    live = _loss(live_trainer, {k: v for k, v in batch.items() if k != "example_id"})
    trainer = _trainer(tmp_path / "cached", dataset)
    cache = tc.enable_teacher_cache(trainer, str(tmp_path / "cache"))
    assert trainer.teacher_cache is cache and cache.teacher_layers == [] and cache.hidden is None
    _forbid_teacher(trainer)  # the cached loss must come from the cache, not from the teacher
    cached = _loss(trainer, batch)
    assert torch.isfinite(live) and live > 0
    assert torch.allclose(cached, live, rtol=2e-3, atol=1e-5), (float(cached), float(live))
    kd = [float(t._metrics["train"]["kd_loss"][-1]) for t in (live_trainer, trainer)]
    assert kd[0] > 0 and kd[1] == pytest.approx(kd[0], rel=2e-2, abs=1e-6)
    assert float(trainer._metrics["train"]["freq_loss"][-1]) == 0.0
    # the logits read back are the live teacher's (float16 precision), and no hidden states come with them
    out = cache.teacher_outputs(batch, need_hidden=False)
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "example_id"}
        teacher_logits = live_trainer.teacher_adapter.forward(live_trainer.teacher, inputs).logits
    torch.testing.assert_close(out.logits, teacher_logits, rtol=2e-3, atol=2e-3)
    assert out.hidden_states is None and cache.teacher_outputs(batch).hidden_states is None


def test_beta_zero_training_reads_the_cache(tmp_path):
    live_logs, cached_logs = train_live_and_cached(tmp_path, _trainer)
    for live, cached in zip(live_logs, cached_logs, strict=True):
        assert cached["loss"] == pytest.approx(live["loss"], rel=5e-3)
        assert cached["freq_loss"] == live["freq_loss"] == 0.0


@pytest.mark.parametrize("teacher_layers", [None, TEACHER_LAYERS])
def test_beta_zero_cache_stores_no_hidden_states(tmp_path, teacher_layers):
    """With beta = 0 nothing reads hidden states, so none are stored, even with teacher_layers given."""
    directory = tmp_path / "cache"
    cache = tc.enable_teacher_cache(_trainer(tmp_path, _dataset(), teacher_layers=teacher_layers), str(directory))
    files = sorted(os.listdir(directory))
    assert files == sorted([CACHE_META_FILENAME, "checksums.npy", "ids.npy", "logits.npy", "offsets.npy"])
    assert not any("hidden" in name for name in files)
    meta = json.loads((directory / CACHE_META_FILENAME).read_text())
    assert meta["fingerprint"]["teacher_layers"] == [] and cache.teacher_layers == []
    assert cache.logits.shape == (40, 3) and len(cache) == 40
    # reopening: the same logits-only cache is reused, not rebuilt
    again = tc.TeacherCache(str(directory))
    assert again.hidden is None and again.fingerprint == cache.fingerprint


def test_logits_only_cache_is_not_reused_when_hidden_states_are_needed(tmp_path, monkeypatch):
    directory = str(tmp_path / "cache")
    dataset = _dataset()
    logits_only = tc.enable_teacher_cache(_trainer(tmp_path, dataset), directory)
    batch = id_collate([dataset[i] for i in BATCH_ROWS])
    with pytest.raises(ValueError, match=r"stores the teacher's logits only .* hidden states were asked for"):
        logits_only.teacher_outputs(batch, need_hidden=True)
    built = []
    real_build = tc.build_teacher_cache
    monkeypatch.setattr(tc, "build_teacher_cache", lambda *a, **k: built.append(1) or real_build(*a, **k))
    # a run that aligns layers: a stale cache is an error naming the missing layers when rebuilding is off ...
    aligned = dict(beta=0.5, teacher_layers=TEACHER_LAYERS)
    with pytest.raises(ValueError, match=r"stale \(teacher_layers changed\).*logits only.*layers \[2, 4\]"):
        tc.enable_teacher_cache(_trainer(tmp_path, dataset, **aligned), directory, rebuild=False)
    assert built == [] and not os.path.exists(os.path.join(directory, "hidden.npy"))
    # ... and rebuilt with the hidden states otherwise
    trainer = _trainer(tmp_path, dataset, **aligned)
    rebuilt = tc.enable_teacher_cache(trainer, directory)
    assert built == [1] and rebuilt.teacher_layers == TEACHER_LAYERS
    assert os.path.isfile(os.path.join(directory, "hidden.npy")) and rebuilt.hidden.shape[1] == 2
    out = rebuilt.teacher_outputs(batch)
    assert sorted(out.hidden_states) == TEACHER_LAYERS
    # the cache with hidden states also serves logit KD (same teacher and data): reused, not rebuilt
    reused = tc.enable_teacher_cache(_trainer(tmp_path, dataset), directory)
    assert built == [1] and reused.teacher_layers == TEACHER_LAYERS


def test_logits_only_cache_still_checks_the_inputs(tmp_path):
    dataset = _dataset()
    cache = tc.enable_teacher_cache(_trainer(tmp_path, dataset), str(tmp_path / "cache"))
    batch = id_collate([dataset[i] for i in BATCH_ROWS])
    batch["input_ids"] = batch["input_ids"].clone()
    batch["input_ids"][1, 0] += 1  # an augmenting collator changed one token
    with pytest.raises(ValueError, match=r"the inputs of example 3 differ from the ones the teacher cache was built"):
        cache.teacher_outputs(batch, need_hidden=False)


def test_recipe_with_cache_and_beta_zero_passes_preflight(workspace, tmp_path):  # noqa: F811
    from hf_spectralkd.pipeline import preflight
    from hf_spectralkd.pipeline.checks import check_teacher_cache
    from hf_spectralkd.recipes import load_recipe

    out = tmp_path / "out"
    recipe = load_recipe(workspace["recipe"], [f"output.dir={out}", "teacher.cache=true", "distillation.beta=0"])
    check_teacher_cache(recipe)
    plan = preflight(recipe)
    assert plan.recipe.teacher.cache and plan.distill_args.beta == 0 and not out.exists()
    # with an alignment term, manual selection still needs the layers to store
    manual = load_recipe(workspace["recipe"], [f"output.dir={out}", "teacher.cache=true",
                                               "distillation.layer_selection=manual"])
    with pytest.raises(ValueError, match=r"set distillation.teacher_layers \(or distillation.beta: 0"):
        check_teacher_cache(manual)
    check_teacher_cache(load_recipe(workspace["recipe"], [f"output.dir={out}", "teacher.cache=true",
                                                          "distillation.layer_selection=manual",
                                                          "distillation.beta=0"]))
    # a task whose inputs change on the fly is refused as before, beta or not
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    image_recipe = os.path.join(root, "recipes", "digits_vit.yaml")
    image = load_recipe(image_recipe, ["teacher.cache=true", "distillation.beta=0"])
    with pytest.raises(ValueError, match=r"the image-classification pipeline transforms its inputs on the fly"):
        check_teacher_cache(image)


def test_cache_teacher_command_logits_only(text_teacher, capsys, monkeypatch):  # noqa: F811
    import datasets
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from hf_spectralkd.cli import main
    from hf_spectralkd.commands.cache_teacher import tokenize_split

    root = text_teacher
    output = root / "logits_cache"
    argv = ["cache-teacher", "--teacher", str(root / "teacher"), "--data", str(root / "train.jsonl"), "--logits-only",
            "--output", str(output), "--max-length", "32", "--batch-size", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "teacher cache built: 24 examples" in printed and "logits only" in printed
    assert not (output / "hidden.npy").exists() and tc.TeacherCache(str(output)).teacher_layers == []
    # a logit-KD trainer with the same tokenization reuses it
    monkeypatch.setattr(tc, "build_teacher_cache", lambda *a, **k: pytest.fail("rebuilt an up-to-date cache"))
    tokenizer = AutoTokenizer.from_pretrained(root / "teacher")
    raw = datasets.load_dataset("json", data_files=str(root / "train.jsonl"), split="train")
    train = tokenize_split(tokenizer, raw, "text", max_length=32)
    train = train.add_column("labels", [0] * len(train))
    trainer = SpectralDistillationTrainer(
        model=_tiny_student(tokenizer), teacher_model=str(root / "teacher"), train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
        args=small_config(root, beta=0.0, spectral_dynamics=False, max_steps=1),
    )
    cache = tc.enable_teacher_cache(trainer, str(output))
    assert len(cache) == 24 and cache.hidden is None
