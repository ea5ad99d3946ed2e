"""The trainer's seams: the static KD loss, an overridable alignment loss, the constructor's layer_map=,
teacher_profile= and teacher_cache= arguments (results handed in instead of edited into the trainer) and the data
columns (one collator: the example ids apart from the model inputs, the distillation columns kept)."""

import dataclasses
import inspect
import json
import math
import os

import numpy as np
import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset
from transformers import BertForSequenceClassification

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


class ConstantAlignmentTrainer(SpectralDistillationTrainer):
    """A feature term of 7 per pair: its value must show up as freq_loss."""

    calls = 0

    def alignment_loss(self, student_hidden, teacher_hidden, attention_mask):
        type(self).calls += 1
        return student_hidden.new_tensor(7.0) + 0.0 * student_hidden.float().sum()


def _record_forward_keys(monkeypatch, model, seen: list) -> None:
    """Append the keyword names of every call of ``model.forward`` to ``seen``."""
    original = model.forward

    def recording(*args, **kwargs):
        seen.append(set(kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording)


class NoLabelsArgument(BertForSequenceClassification):
    """A classifier whose forward() takes no labels: Trainer's column removal alone would drop them."""

    def forward(self, input_ids=None, attention_mask=None, output_hidden_states=None, return_dict=None):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                               output_hidden_states=output_hidden_states, return_dict=return_dict)


def _as_text(batch):
    """A set_transform from a raw "text" column to the model inputs (the raw column is not a model input)."""
    ids = [[int(t) for t in text.split()] for text in batch["text"]]
    return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "labels": batch["labels"],
            "note": batch["note"]}


class TestLossSeams:
    """The static KD loss and the overridable alignment loss."""

    def test_logit_kd_loss_by_hand_on_a_2x3_example(self):
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

    def test_an_overridden_alignment_loss_is_the_one_used(self, tmp_path):
        trainer = build(tmp_path, ConstantAlignmentTrainer, config={"teacher_layers": [2, 4], "max_steps": 2})
        trainer.train()
        logs = [entry for entry in trainer.state.log_history if "freq_loss" in entry]
        assert len(logs) == 2 and all(entry["freq_loss"] == pytest.approx(7.0) for entry in logs)
        assert ConstantAlignmentTrainer.calls == 2 * 2  # two pairs per step


class TestConstruction:
    """How the trainer takes its models: the teacher by keyword, wrapped models unwrapped by one helper."""

    def test_teacher_model_is_keyword_only(self, tmp_path):
        # a positional third argument is the Trainer's data_collator slot: it can never bind to the teacher
        with pytest.raises(TypeError):
            SpectralDistillationTrainer(tiny_bert(2, 16), small_config(tmp_path), tiny_bert(4))

    def test_unwrap_model_is_the_one_unwrapping_helper(self):
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


class TestGivenSelection:
    """Results handed in: teacher_profile= and layer_map= instead of a second analysis."""

    def test_teacher_profile_selects_without_a_second_analysis(self, tmp_path, monkeypatch):
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

    def test_teacher_profile_of_another_teacher_is_refused(self, tmp_path):
        auto = build(tmp_path / "auto")
        auto.setup_layer_map()
        short = dataclasses.replace(
            auto.spectral_profile,
            spectrum_sums=auto.spectral_profile.spectrum_sums[:3],
            token_counts=auto.spectral_profile.token_counts[:3],
        )
        with pytest.raises(ValueError, match=r"teacher_profile has 3 layers but the teacher returns 5 hidden states"):
            build(tmp_path / "bad", teacher_profile=short)

    def test_layer_map_is_used_as_given_and_probed(self, tmp_path, monkeypatch):
        monkeypatch.setattr(
            trainer_module, "collect_profile", lambda *a, **k: pytest.fail("no analysis with a layer map")
        )
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

    def test_student_layers_is_public(self, tmp_path):
        assert build(tmp_path).student_layers() == [1, 2]
        assert build(tmp_path, config={"num_aligned_layers": 1}).student_layers() == [2]


class TestTeacherCacheArgument:
    """teacher_cache=: the ids added, the cache built once and read, augmenting data refused."""

    def test_teacher_cache_argument_adds_ids_builds_once_and_trains_from_it(self, tmp_path, monkeypatch):
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

    def test_teacher_cache_argument_refuses_augmenting_data_before_any_work(self, tmp_path):
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


class TestDataColumns:
    """One collator handles the columns (DistillationDataCollator): the example ids apart from the model inputs,
    the labels and kd_mask kept through remove_unused_columns, every other unused column dropped."""

    def test_the_id_column_reaches_the_cache_and_never_a_model_forward(self, tmp_path, monkeypatch):
        uids = [1000 + 7 * i for i in range(24)]  # not the row index: the cache must read this column
        train = Dataset.from_list(make_token_rows(24)).add_column("uid", uids)
        evaluation = Dataset.from_list(make_token_rows(8, seed=3)).add_column("uid", list(range(8)))
        trainer = SpectralDistillationTrainer(
            model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
            args=small_config(tmp_path, spectral_dynamics=False, teacher_layers=[2, 4], max_steps=3),
            train_dataset=train, eval_dataset=evaluation, teacher_cache=str(tmp_path / "cache"),
            teacher_cache_id_column="uid", data_collator=pad_collate,  # it drops unknown keys: the ids pass it by
        )
        seen = {"student": [], "teacher": []}
        _record_forward_keys(monkeypatch, trainer.model, seen["student"])
        _record_forward_keys(monkeypatch, trainer.teacher, seen["teacher"])
        read = []
        cached_outputs = tc.TeacherCache.teacher_outputs

        def reading(cache, inputs, need_hidden=None):
            read.extend(inputs["example_id"].tolist())
            return cached_outputs(cache, inputs, need_hidden)

        monkeypatch.setattr(tc.TeacherCache, "teacher_outputs", reading)
        cache = trainer.setup_teacher_cache()  # the selection sample and the build run the live teacher
        assert cache.id_column == "uid" and sorted(np.load(tmp_path / "cache" / "ids.npy").tolist()) == uids
        built, probed = len(seen["teacher"]), len(seen["student"])
        assert built > 0 and probed == 1
        trainer.train()  # 3 steps of 8 = one epoch: every id read once, the teacher never run
        assert sorted(read) == uids
        assert len(seen["teacher"]) == built and len(seen["student"]) == probed + 3
        metrics = trainer.evaluate()  # the evaluation rows (with ids of their own) are not cached: the live teacher
        assert len(seen["teacher"]) == built + 1 and len(read) == 24 and math.isfinite(metrics["eval_kd_loss"])
        calls = seen["student"] + seen["teacher"]
        assert all("input_ids" in keys and not keys & {"uid", "example_id"} for keys in calls), calls

    @pytest.mark.parametrize("kind", ["dataset", "iterable", "set_transform"])
    def test_remove_unused_columns_keeps_the_labels_and_drops_a_user_column(self, tmp_path, kind):
        rows = [{**row, "note": f"row {i}"} for i, row in enumerate(make_token_rows(16))]
        if kind == "set_transform":
            raw = [{"text": " ".join(map(str, r["input_ids"])), "labels": r["labels"], "note": r["note"]}
                   for r in rows]
            train = Dataset.from_list(raw).with_transform(_as_text)
        else:
            train = Dataset.from_list(rows)
            train = train.to_iterable_dataset() if kind == "iterable" else train
        keys = []

        def collate(features):
            keys.append(set(features[0]))
            return pad_collate(features)

        torch.manual_seed(1)
        args = small_config(tmp_path, spectral_dynamics=False, teacher_layers=[2, 4], max_steps=2)
        assert args.remove_unused_columns  # the TrainingArguments default
        trainer = SpectralDistillationTrainer(
            model=NoLabelsArgument(tiny_bert(2, 16).config), teacher_model=tiny_bert(4), args=args,
            train_dataset=train, data_collator=collate,
        )
        assert trainer.label_names == ["labels"]
        assert "labels" not in inspect.signature(trainer.model.forward).parameters
        trainer.train()
        assert keys and all(k == {"input_ids", "attention_mask", "labels"} for k in keys), keys  # "note" removed
        logs = [log for log in trainer.state.log_history if "loss" in log]
        assert len(logs) == 2 and all(log["ce_loss"] > 0 for log in logs)  # the labels reached the CE term
        assert args.remove_unused_columns and not trainer.args.remove_unused_columns  # Trainer's copy only

    def test_remove_unused_columns_keeps_kd_mask(self, tmp_path):
        """Unlabelled token rows (transfer rows: labels all -100) count for KD where their kd_mask is 1: dropped, the
        batch would have no counted position and no KD term."""
        from test_heads import TAU, bert
        from test_heads import collate as token_collate

        g = torch.Generator().manual_seed(0)
        rows = []
        for i in range(8):
            length = 5 + i % 3
            ids = torch.randint(5, 60, (length,), generator=g).tolist()
            rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": [-100] * length,
                         "kd_mask": [j % 2 for j in range(length)], "note": f"row {i}"})
        keys = []

        def collate(features):
            keys.append(set(features[0]))
            return token_collate(features)

        teacher = bert("BertForTokenClassification", 4, 32, 0, num_labels=5)
        with torch.no_grad():
            teacher.classifier.weight.mul_(20)  # a sizeable KD term
        trainer = SpectralDistillationTrainer(
            model=bert("BertForTokenClassification", 2, 16, 1, num_labels=5), teacher_model=teacher,
            args=small_config(tmp_path, spectral_dynamics=False, teacher_layers=[2, 4], temperature=TAU),
            train_dataset=Dataset.from_list(rows), data_collator=collate,
        )
        batch = next(iter(trainer.get_train_dataloader()))
        assert keys[-1] == {"input_ids", "attention_mask", "labels", "kd_mask"} and "note" not in batch
        student = trainer.model.eval()
        with torch.no_grad():
            trainer.compute_loss(student, batch)
            s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
            t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
        p_t = torch.softmax(t / TAU, -1)
        per_position = (p_t * (p_t.log() - torch.log_softmax(s / TAU, -1))).sum(-1) * TAU**2
        expected = float(per_position[batch["kd_mask"].bool()].mean())
        assert expected > 1e-2
        assert float(trainer._metrics["eval"]["kd_loss"][-1]) == pytest.approx(expected, rel=1e-5)

    def test_the_collator_moves_the_ids_and_is_the_wrapped_collator_otherwise(self):
        import pickle

        from hf_spectralkd.collator import DistillationDataCollator

        class Padding:
            tokenizer = "the tokenizer"  # Trainer saves data_collator.tokenizer when there is no processing_class

            def __call__(self, features):  # passes the id column on, as DataCollatorWithPadding does
                self.keys = set(features[0])
                return {**pad_collate(features), "uid": torch.tensor([f["uid"] for f in features])}

        inner = Padding()
        collator = DistillationDataCollator(inner, keep=None, id_column="uid")
        rows = [{**row, "uid": 50 - i, "note": "kept"} for i, row in enumerate(make_token_rows(3))]
        batch = collator(rows)
        assert inner.keys == {"input_ids", "attention_mask", "labels", "uid", "note"}  # keep=None: every column
        assert set(batch) == {"input_ids", "attention_mask", "labels", "example_id"}  # "uid" is no model input
        assert batch["example_id"].dtype == torch.long and batch["example_id"].tolist() == [50, 49, 48]
        assert collator.tokenizer == "the tokenizer"
        with pytest.raises(AttributeError):
            collator.no_such_attribute  # noqa: B018
        again = pickle.loads(pickle.dumps(DistillationDataCollator(pad_collate, keep=(), id_column="uid")))
        with pytest.raises(KeyError, match="input_ids"):  # keep=(): every column but the ids removed
            again(rows)
        assert again.id_column == "uid" and again.keep == frozenset()
