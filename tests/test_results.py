"""results.json as a versioned RunResults: round trip, format version, finding a run's results, and the partial
results a trainer knows (duck-typed, no training needed)."""

import copy
import json
import os
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from hf_spectralkd.adapters import ModelAdapter
from hf_spectralkd.constants import RESULTS_FILENAME
from hf_spectralkd.results import RESULTS_FORMAT_VERSION, RunResults, find_run_results, results_from_trainer

# the results.json a recipe run wrote (tests/test_peft.py's LoRA run), before the format was versioned
RUN_RESULTS = {
    "recipe": "runs/tiny/recipe.yaml",
    "recipe_name": "tiny_lora",
    "created": "2026-11-30T16:41:36.834034+00:00",
    "task": "text-classification",
    "eval_split": "test",
    "smoke": False,
    "dataset": {
        "name": "clinc150-3",
        "source": "runs/tiny/data",
        "num_labels": 3,
        "splits": {"train": 48, "validation": 12, "test": 18},
        "text_column": "text",
        "label_column": "label",
        "license": None,
        "citation": None,
        "label_names": ["timer", "translate", "weather"],
    },
    "teacher": {
        "source": "runs/tiny/tiny_bert",
        "path": "runs/tiny/run/teacher",
        "num_layers": 4,
        "hidden_size": 32,
        "num_parameters": 1014211,
        "metrics": {"accuracy": 0.3333333333333333, "macro_f1": 0.16666666666666666},
        "throughput_samples_per_s": 315.633,
    },
    "student": {
        "source": "runs/tiny/tiny_bert",
        "path": "runs/tiny/run/student",
        "num_layers": 2,
        "hidden_size": 32,
        "num_parameters": 997123,
        "metrics": {"accuracy": 0.3333333333333333, "macro_f1": 0.16666666666666666},
        "throughput_samples_per_s": 318.586,
        "init": "teacher_layers",
        "init_layers": [2, 4],
    },
    "baseline": None,
    "layer_map": {
        "teacher_layers": [3, 4],
        "student_layers": [1, 2],
        "strategy": "topk",
        "teacher_intensity": [
            0.15361946821212769,
            0.15363803505897522,
            0.15365487337112427,
            0.1536715030670166,
            0.1537432223558426,
        ],
    },
    "distillation": {
        "alpha": 0.9,
        "temperature": 1.0,
        "beta": 0.2,
        "fft_axis": "tokens",
        "freq_loss_variant": "complex",
        "layer_selection": "topk",
        "selection_samples": 16,
    },
    "training": {
        "learning_rate": 0.01,
        "num_train_epochs": 2,
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "seed": 42,
        "gradient_accumulation_steps": 1,
        "teacher_finetune": {"epochs": 1.0, "learning_rate": 0.001, "args": {}},
        "logging_steps": 1.0,
        "per_device_eval_batch_size": 32,
        "disable_tqdm": True,
    },
    "timings_s": {
        "teacher_finetune": 0.52,
        "analysis": 1.13,
        "distill": 1.96,
        "baseline": 0.0,
        "evaluate": 0.16,
        "total": 3.87,
    },
    "reused_stages": [],
    "versions": {"hf_spectralkd": "0.1.0", "torch": "2.14.1"},
    "output_dir": "runs/tiny/run",
    "hub": {"push_to_hub": False, "hub_model_id": None, "private": False},
}


def test_a_runs_results_round_trip_unchanged_with_the_format_version_first(tmp_path):
    results = RunResults.from_dict(copy.deepcopy(RUN_RESULTS))
    assert results.format_version == RESULTS_FORMAT_VERSION == 1
    assert results.student["metrics"]["accuracy"] == RUN_RESULTS["student"]["metrics"]["accuracy"]
    assert results.layer_map["teacher_layers"] == [3, 4] and results.baseline is None and results.extra == {}
    as_dict = results.to_dict()
    assert list(as_dict) == ["format_version", *RUN_RESULTS]  # today's keys, in today's order
    assert as_dict == {"format_version": 1, **RUN_RESULTS}

    path = results.save(tmp_path)
    assert path == os.path.join(tmp_path, RESULTS_FILENAME) and os.listdir(tmp_path) == [
        RESULTS_FILENAME
    ]  # no temp file left
    with open(path) as handle:
        assert json.load(handle) == as_dict
    assert RunResults.load(tmp_path) == results == RunResults.load(path)
    assert RunResults.from_dict(as_dict) == results  # a versioned file reads back the same


def test_format_version_is_checked_and_unknown_keys_are_kept(tmp_path):
    with pytest.raises(ValueError, match=r"format_version 2 .*\(1\.\.1\)"):
        RunResults.from_dict({**RUN_RESULTS, "format_version": 2})
    with pytest.raises(ValueError, match="format_version '1'"):
        RunResults.from_dict({**RUN_RESULTS, "format_version": "1"})
    with pytest.raises(ValueError, match="must be a mapping"):
        RunResults.from_dict([RUN_RESULTS])
    results = RunResults.from_dict({**RUN_RESULTS, "notes": "kept"})
    assert results.extra == {"notes": "kept"} and results.to_dict()["notes"] == "kept"
    # the trainer-only fields are written only when set
    assert "log_history" not in results.to_dict() and "usage_example" not in results.to_dict()
    assert RunResults(student={}, log_history=[{"loss": 1.0}]).to_dict()["log_history"] == [{"loss": 1.0}]


def _write(path, payload):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(payload if isinstance(payload, str) else json.dumps(payload))


def test_find_run_results_in_a_run_dir_and_in_a_student_dir(tmp_path):
    run = tmp_path / "run"
    _write(run / RESULTS_FILENAME, RUN_RESULTS)
    (run / "student").mkdir()
    results, student_dir = find_run_results(run)
    assert isinstance(results, RunResults) and results.recipe_name == "tiny_lora"
    assert student_dir == str(run / "student")
    # the student dir: results.json is read from its parent
    assert find_run_results(run / "student") == (results, str(run / "student"))
    # a student dir with its own results.json
    _write(tmp_path / "alone" / RESULTS_FILENAME, {**RUN_RESULTS, "recipe_name": "alone"})
    results, student_dir = find_run_results(tmp_path / "alone")
    assert results.recipe_name == "alone" and student_dir == str(tmp_path / "alone")
    # no results.json anywhere near: None, and the directory itself is the student dir
    (tmp_path / "x" / "lonely").mkdir(parents=True)
    assert find_run_results(tmp_path / "x" / "lonely") == (None, str(tmp_path / "x" / "lonely"))


def test_find_run_results_errors_name_the_option_and_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"--run-dir '.*missing' does not exist"):
        find_run_results(tmp_path / "missing", "--run-dir")
    _write(tmp_path / "bad" / RESULTS_FILENAME, "{not json")
    with pytest.raises(ValueError, match=r"results.json is not valid JSON"):
        find_run_results(tmp_path / "bad")
    _write(tmp_path / "unfinished" / RESULTS_FILENAME, {"recipe_name": "x"})
    with pytest.raises(ValueError, match="has no 'student' entry"):
        find_run_results(tmp_path / "unfinished")


# --------------------------------------------------------------------------------------------- from a trainer
@dataclass
class _LayerMap:
    teacher_layers: list = field(default_factory=lambda: [2, 4])
    student_layers: list = field(default_factory=lambda: [1, 2])
    strategy: str = "topk"
    teacher_intensity: list = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5])


class _Adapter(ModelAdapter):  # the interface's defaults (task, packages) and a fake describe()
    def __init__(self, name, layers, broken=False, task="text-classification"):
        self.name, self.layers, self.broken, self.task = name, layers, broken, task

    def describe(self, model):
        if self.broken:
            raise RuntimeError("sharded")
        return {"num_layers": self.layers, "hidden_size": 8 * self.layers, "num_parameters": 1000 * self.layers}

    def num_labels(self, model):
        return 3


def _fake_trainer(tmp_path, **overrides):
    args = SimpleNamespace(
        alpha=0.9,
        temperature=2.0,
        beta=0.1,
        fft_axis="tokens",
        freq_loss_variant="complex",
        layer_selection="topk",
        learning_rate=1e-3,
        num_train_epochs=1,
        max_steps=5,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        weight_decay=0.0,
        lr_scheduler_type=SimpleNamespace(value="linear"),
        seed=42,
        output_dir=str(tmp_path / "out"),
    )
    (tmp_path / "teacher").mkdir(exist_ok=True)
    history = [{"loss": 0.9, "step": 5}, {"eval_loss": 0.5, "eval_accuracy": 0.75, "eval_runtime": 1.0, "step": 5}]
    trainer = SimpleNamespace(
        args=args,
        model=SimpleNamespace(config=SimpleNamespace(_name_or_path="ignored")),
        teacher=SimpleNamespace(config=SimpleNamespace(_name_or_path=str(tmp_path / "teacher"))),
        student_adapter=_Adapter("hf", 2),
        teacher_adapter=_Adapter("hf", 4),
        layer_map=_LayerMap(),
        state=SimpleNamespace(log_history=history, global_step=5),
        train_dataset=[0] * 40,
        eval_dataset=[0] * 8,
    )
    for key, value in overrides.items():
        setattr(trainer, key, value)
    return trainer


def test_results_from_trainer_fill_what_the_card_needs(tmp_path):
    results = results_from_trainer(_fake_trainer(tmp_path), dataset="someone/intents")
    assert (
        isinstance(results, RunResults)
        and results.task == "text-classification"
        and results.eval_split == "validation"
    )
    assert results.teacher == {
        "num_layers": 4,
        "hidden_size": 32,
        "num_parameters": 4000,
        "source": str(tmp_path / "teacher"),
        "path": str(tmp_path / "teacher"),
        "throughput_samples_per_s": None,
        "metrics": {},
    }
    assert results.student["path"] == str(tmp_path / "out") and results.student["source"] is None
    assert results.student["metrics"] == {"accuracy": 0.75}  # the last evaluation, eval_loss left out
    assert results.layer_map == {
        "teacher_layers": [2, 4],
        "student_layers": [1, 2],
        "strategy": "topk",
        "teacher_intensity": [0.1, 0.2, 0.3, 0.4, 0.5],
    }
    assert results.dataset == {
        "name": "someone/intents",
        "source": "someone/intents",
        "num_labels": 3,
        "splits": {"train": 40, "validation": 8},
    }
    assert results.distillation["temperature"] == 2.0 and results.training["lr_scheduler_type"] == "linear"
    assert results.training["global_step"] == 5 and results.log_history[-1]["eval_accuracy"] == 0.75
    assert "torch" in results.versions and results.output_dir == str(tmp_path / "out")
    assert RunResults.from_dict(json.loads(json.dumps(results.to_dict()))) == results

    # a timm student, unreadable teacher sizes, no layer map, a dict of eval sets, an iterable train set
    results = results_from_trainer(
        _fake_trainer(
            tmp_path,
            student_adapter=_Adapter("timm", 2, task="image-classification"),
            teacher_adapter=_Adapter("timm", 4, broken=True, task="image-classification"),
            layer_map=None,
            eval_dataset={"a": [1]},
            train_dataset=iter([1, 2]),
        )
    )
    assert results.task == "image-classification"
    assert "num_layers" not in results.teacher and results.teacher["hidden_size"] is None
    assert results.layer_map == {} and results.dataset["splits"] == {}
    assert results.dataset["name"] == "the Trainer's eval_dataset" and results.dataset["source"] is None
