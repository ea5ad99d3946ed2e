"""The trainer's seams: the static KD loss, an overridable alignment loss, and the constructor's layer_map=,
teacher_profile= and teacher_cache= arguments (results handed in instead of edited into the trainer)."""

import dataclasses
import json
import math
import os

import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset

import hf_spectralkd.distillation_trainer as trainer_module
import hf_spectralkd.teacher_cache as tc
from hf_spectralkd import LayerMap, SpectralDistillationTrainer
from hf_spectralkd.constants import CACHE_META_FILENAME


def id_collate(batch):
    """pad_collate that passes the cache's id column through (as DataCollatorWithPadding does)."""
    out = pad_collate(batch)
    if "example_id" in batch[0]:
        out["example_id"] = torch.tensor([x["example_id"] for x in batch])
    return out


def build(tmp_path, cls=SpectralDistillationTrainer, rows=None, collate=pad_collate, **kwargs):
    config = {"spectral_dynamics": False, **kwargs.pop("config", {})}
    return cls(
        model=tiny_bert(num_layers=2, hidden=16, seed=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, **config),
        train_dataset=Dataset.from_list(rows if rows is not None else make_token_rows(32)),
        data_collator=collate,
        **kwargs,
    )


# ---------------------------------------------------------------- loss seams
def test_logit_kd_loss_by_hand_on_a_2x3_example():
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[3.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    tau = 2.0

    def softmax(row):
        exps = [math.exp(v / tau) for v in row]
        return [e / sum(exps) for e in exps]

    # row 1: KL(p_t || p_s) with p_t = softmax([1.5, 1, .5]), p_s = softmax([.5, 1, 1.5]); row 2: identical, 0
    p_t, p_s = softmax(teacher[0].tolist()), softmax(student[0].tolist())
    row_kl = sum(t * (math.log(t) - math.log(s)) for t, s in zip(p_t, p_s, strict=True))
    expected = tau**2 * (row_kl + 0.0) / 2  # batchmean: divided by the 2 rows
    loss = SpectralDistillationTrainer.logit_kd_loss(student, teacher, tau)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(loss) == pytest.approx(0.640313, abs=1e-6)  # 4 * 0.3201567 / 2
    # identical logits: zero; half-precision inputs are computed in float32
    assert float(SpectralDistillationTrainer.logit_kd_loss(student, student, tau)) == pytest.approx(0.0, abs=1e-7)
    half = SpectralDistillationTrainer.logit_kd_loss(student.half(), teacher.half(), tau)
    assert half.dtype == torch.float32 and float(half) == pytest.approx(expected, rel=1e-3)


class ConstantAlignmentTrainer(SpectralDistillationTrainer):
    """A feature term of 7 per pair: its value must show up as freq_loss."""

    calls = 0

    def alignment_loss(self, student_hidden, teacher_hidden, attention_mask):
        type(self).calls += 1
        return student_hidden.new_tensor(7.0) + 0.0 * student_hidden.float().sum()


def test_an_overridden_alignment_loss_is_the_one_used(tmp_path):
    trainer = build(tmp_path, ConstantAlignmentTrainer, config={"teacher_layers": [2, 4], "max_steps": 2})
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "freq_loss" in entry]
    assert len(logs) == 2 and all(entry["freq_loss"] == pytest.approx(7.0) for entry in logs)
    assert ConstantAlignmentTrainer.calls == 2 * 2  # two pairs per step


def test_teacher_model_is_keyword_only(tmp_path):
    # a positional third argument is the Trainer's data_collator slot: it can never bind to the teacher
    with pytest.raises(TypeError):
        SpectralDistillationTrainer(tiny_bert(2, 16), small_config(tmp_path), tiny_bert(4))


# ---------------------------------------------------------------- results handed in
def test_teacher_profile_selects_without_a_second_analysis(tmp_path, monkeypatch):
    auto = build(tmp_path / "auto", config={"num_aligned_layers": 2})
    expected = auto.setup_layer_map()
    profile = auto.spectral_profile
    metadata_before = dict(profile.metadata)
    given = dataclasses.replace(profile, metadata={"model": "the caller's"})

    def no_analysis(*args, **kwargs):
        raise AssertionError("the teacher was analysed although its profile was given")

    monkeypatch.setattr(trainer_module, "collect_profile", no_analysis)
    trainer = build(tmp_path / "given", teacher_profile=given, config={"num_aligned_layers": 2})
    layer_map = trainer.setup_layer_map()
    assert layer_map == expected and layer_map.strategy == "topk"
    assert given.metadata == {"model": "the caller's"}  # the caller's profile is not edited
    assert profile.metadata == metadata_before
    out = tmp_path / "given" / "out"
    assert {"layer_map.json", "spectral_profile.json", "layer_intensity.png"} <= set(os.listdir(out))
    saved = json.loads((out / "spectral_profile.json").read_text())
    assert (
        saved["metadata"]["selected_layers"] == expected.teacher_layers
        and saved["metadata"]["model"] == "the caller's"
    )
    # strategy and count come from the trainer's args
    uniform = build(
        tmp_path / "uniform", teacher_profile=given, config={"num_aligned_layers": 2, "layer_selection": "uniform"}
    )
    assert uniform.setup_layer_map().teacher_layers == [2, 4]


def test_teacher_profile_of_another_teacher_is_refused(tmp_path):
    auto = build(tmp_path / "auto")
    auto.setup_layer_map()
    short = dataclasses.replace(
        auto.spectral_profile,
        spectrum_sums=auto.spectral_profile.spectrum_sums[:3],
        token_counts=auto.spectral_profile.token_counts[:3],
    )
    with pytest.raises(ValueError, match=r"teacher_profile has 3 layers but the teacher returns 5 hidden states"):
        build(tmp_path / "bad", teacher_profile=short)


def test_layer_map_is_used_as_given_and_probed(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "collect_profile", lambda *a, **k: pytest.fail("no analysis with a layer map"))
    given = LayerMap([3, 1], [2, 1], "from-the-caller", [0.1, 0.2, 0.3, 0.4, 0.5])
    trainer = build(tmp_path, layer_map=given)
    assert trainer.setup_layer_map() == given
    saved = json.loads((tmp_path / "out" / "layer_map.json").read_text())
    assert (
        saved["teacher_layers"] == [3, 1]
        and saved["strategy"] == "from-the-caller"
        and saved["pairs"] == [[2, 3], [1, 1]]
    )
    with pytest.raises(
        ValueError, match=r"student_layers \[5\] out of range: valid indices are 0\.\.2 \(the student returns 3"
    ):
        build(tmp_path / "probe", layer_map=LayerMap([2, 4], [1, 5], "x")).setup_layer_map()
    with pytest.raises(ValueError, match=r"layer_map.teacher_layers \[9\] out of range: valid indices are 0\.\.4"):
        build(tmp_path / "range", layer_map=LayerMap([2, 9], [1, 2], "x"))
    with pytest.raises(ValueError, match="teacher_layers has 1 entries and student_layers 2"):
        build(tmp_path / "length", layer_map=LayerMap([2], [1, 2], "x"))


def test_student_layers_is_public(tmp_path):
    assert build(tmp_path).student_layers() == [1, 2]
    assert build(tmp_path, config={"num_aligned_layers": 1}).student_layers() == [2]


def test_teacher_cache_argument_adds_ids_builds_once_and_trains_from_it(tmp_path, monkeypatch):
    rows = make_token_rows(32)
    directory = tmp_path / "cache"
    trainer = build(
        tmp_path / "run",
        rows=rows,
        collate=id_collate,
        teacher_cache=str(directory),
        config={"teacher_layers": [2, 4], "max_steps": 3},
    )
    assert "example_id" in trainer.train_dataset.column_names and trainer.teacher_cache is None
    cache = trainer.setup_teacher_cache()
    assert trainer.teacher_cache is cache and len(cache) == 32 and cache.teacher_layers == [2, 4]
    assert (directory / CACHE_META_FILENAME).is_file()

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran during training although its outputs are cached")

    live_forward = trainer.teacher.forward
    trainer.teacher.forward = no_teacher  # the id column survived remove_unused_columns, or this would run
    trainer.train()
    trainer.teacher.forward = live_forward
    assert [e["freq_loss"] > 0 for e in trainer.state.log_history if "freq_loss" in e] == [True] * 3

    # a TeacherCache object names the same directory: reused, not rebuilt
    monkeypatch.setattr(tc, "build_teacher_cache", lambda *a, **k: pytest.fail("rebuilt an up-to-date cache"))
    again = build(
        tmp_path / "again",
        rows=rows,
        collate=id_collate,
        teacher_cache=cache,
        config={"teacher_layers": [2, 4], "max_steps": 1},
    )
    again.train()
    assert again.teacher_cache.fingerprint == cache.fingerprint


def test_teacher_cache_argument_refuses_augmenting_data_before_any_work(tmp_path):
    augmented = Dataset.from_list(make_token_rows(8)).with_transform(lambda batch: batch)
    with pytest.raises(ValueError, match="on-the-fly transform"):
        SpectralDistillationTrainer(
            model=tiny_bert(2, 16),
            teacher_model=tiny_bert(4),
            args=small_config(tmp_path, teacher_layers=[2, 4]),
            train_dataset=augmented,
            data_collator=id_collate,
            teacher_cache=str(tmp_path / "cache"),
        )
    assert not (tmp_path / "cache").exists()


def test_unwrap_model_is_the_one_unwrapping_helper():
    from hf_spectralkd.adapters import unwrap_model

    base = torch.nn.Linear(2, 2)

    class PeftLike(torch.nn.Module):  # what peft.PeftModel exposes: peft_config and get_base_model()
        peft_config = {"default": None}

        def __init__(self):
            super().__init__()
            self.base_model = base

        def get_base_model(self):
            return self.base_model

    class DistributedLike(torch.nn.Module):  # DDP / DeepSpeed keep the model in .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    peft_model = PeftLike()
    wrapped = DistributedLike(peft_model)
    assert unwrap_model(wrapped) is peft_model  # the PEFT model is what trains and saves: kept by default
    assert unwrap_model(wrapped, peft=True) is base
    assert unwrap_model(DistributedLike(base)) is base and unwrap_model(base, peft=True) is base
