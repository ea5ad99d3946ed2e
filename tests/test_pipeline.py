"""The recipe pipeline end to end on a tiny BERT teacher and a 3-intent subset of CLINC150, its resume logic,
the errors raised before any work (nothing left in the output directory), and the `evaluate` command."""

import json
import os

import pytest
import yaml
from conftest import SHARED_DATA

LABELS = ["timer", "translate", "weather"]
LAYOUT = [
    "teacher/config.json",
    "teacher/model.safetensors",
    "teacher/tokenizer.json",
    "teacher/fingerprint.json",
    "teacher/stage_done.json",
    "analysis/spectral_profile.json",
    "analysis/layer_intensity.png",
    "analysis/stage_done.json",
    "student/config.json",
    "student/model.safetensors",
    "student/tokenizer.json",
    "student/layer_map.json",
    "student/layer_intensity.png",
    "student/stage_done.json",
    "baseline/config.json",
    "baseline/model.safetensors",
    "baseline/stage_done.json",
    "results.json",
    "summary.md",
]
RESULT_KEYS = {
    "recipe",
    "recipe_name",
    "created",
    "task",
    "eval_split",
    "dataset",
    "teacher",
    "student",
    "baseline",
    "layer_map",
    "distillation",
    "training",
    "timings_s",
    "versions",
    "output_dir",
}
MODEL_KEYS = {"source", "path", "num_layers", "hidden_size", "num_parameters", "metrics", "throughput_samples_per_s"}


def _subset(split, per_label):
    rows, counts = [], {}
    with open(os.path.join(SHARED_DATA, f"{split}.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["label"] in LABELS and counts.get(row["label"], 0) < per_label:
                counts[row["label"]] = counts.get(row["label"], 0) + 1
                rows.append(row)
    return rows


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny BERT base (MiniLM vocabulary and tokenizer) and a 3-intent CLINC150 subset, plus a recipe."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hf_spectralkd.loading import packaged_minilm_path

    root = tmp_path_factory.mktemp("pipeline")
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    base = root / "tiny_bert"
    BertForSequenceClassification(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    data = root / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", _subset("train", 24))
    _write_jsonl(data / "validation.jsonl", _subset("validation", 6))
    _write_jsonl(data / "test.jsonl", _subset("test", 8))
    recipe = {
        "name": "tiny_clinc",
        "teacher": {
            "base": "../tiny_bert",
            "finetune": {"epochs": 1, "max_steps": 3, "batch_size": 16, "learning_rate": "1e-3"},
        },
        "student": {"init": "teacher_layers", "num_layers": 2, "init_layers": "uniform"},
        "data": {"source": "../data", "max_length": 24, "name": "clinc150-3"},
        "distillation": {"beta": 0.2, "layer_selection": "topk", "selection_samples": 16, "dynamics_samples": 8},
        "training": {
            "max_steps": 3,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 32,
            "learning_rate": "1e-3",
            "logging_steps": 1,
            "disable_tqdm": True,
        },
        "evaluation": {"split": "test", "baseline": True},
        "output": {"dir": str(root / "run")},
    }
    recipes = root / "recipes"
    recipes.mkdir()
    path = recipes / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return {"root": root, "recipe": str(path), "out": str(root / "run"), "data": str(data), "base": str(base)}


def _run(recipe_path, overrides=()):
    from hf_spectralkd.pipeline import run_pipeline
    from hf_spectralkd.recipes import load_recipe

    lines = []
    results = run_pipeline(load_recipe(recipe_path, list(overrides)), log=lines.append)
    return results, lines


@pytest.fixture(scope="module")
def first_run(workspace):
    results, lines = _run(workspace["recipe"])
    return results, lines


def test_pipeline_writes_the_layout_and_results(workspace, first_run):
    results, lines = first_run
    out = workspace["out"]
    for name in LAYOUT:
        assert os.path.isfile(os.path.join(out, name)), name
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    with open(os.path.join(out, "results.json")) as handle:
        saved = json.load(handle)
    assert RESULT_KEYS <= set(saved)
    for role in ("teacher", "student", "baseline"):
        assert MODEL_KEYS <= set(saved[role]), role
        for metric in ("accuracy", "macro_f1"):
            assert 0.0 <= saved[role]["metrics"][metric] <= 1.0
        assert saved[role]["throughput_samples_per_s"] > 0
    assert saved["dataset"]["num_labels"] == 3 and saved["dataset"]["splits"] == {
        "train": 72,
        "validation": 18,
        "test": 24,
    }
    assert saved["dataset"]["label_names"] == LABELS  # sorted names from train
    assert saved["teacher"]["num_layers"] == 4 and saved["student"]["num_layers"] == 2
    assert saved["student"]["init"] == "teacher_layers" and saved["student"]["init_layers"] == [2, 4]
    assert saved["student"]["num_parameters"] < saved["teacher"]["num_parameters"]
    assert saved["layer_map"]["student_layers"] == [1, 2] and len(saved["layer_map"]["teacher_layers"]) == 2
    assert len(saved["layer_map"]["teacher_intensity"]) == 5
    assert set(saved["timings_s"]) >= {"teacher_finetune", "analysis", "distill", "baseline", "evaluate", "total"}
    assert saved["distillation"]["beta"] == pytest.approx(0.2) and saved["method"] == "SpectralKD"
    assert saved["training"]["max_steps"] == 3
    # the accuracies in results.json are the ones in the per-model evaluation files
    with open(os.path.join(out, "evaluation", "student.json")) as handle:
        assert json.load(handle)["metrics"] == saved["student"]["metrics"]
    # one line per stage, saying where outputs go
    for tag, where in (
        ("[1/6 teacher]", "teacher"),
        ("[2/6 analysis]", "analysis"),
        ("[3/6 student]", "student"),
        ("[4/6 evaluate]", "evaluation"),
        ("[5/6 baseline]", "baseline"),
        ("[6/6 results]", "results.json"),
    ):
        line = next(line for line in lines if line.startswith(tag))
        assert os.path.join(out, where) in line
    summary = open(os.path.join(out, "summary.md")).read()
    assert "teacher" in summary and "no-KD" in summary and "SpectralKD" in summary


def test_labels_are_stored_in_both_models(workspace, first_run):
    from transformers import AutoConfig

    for role in ("teacher", "student", "baseline"):
        config = AutoConfig.from_pretrained(os.path.join(workspace["out"], role))
        assert [config.id2label[i] for i in range(3)] == LABELS
        assert config.label2id == {name: i for i, name in enumerate(LABELS)}


def test_student_is_built_from_the_copied_teacher_layers(workspace, first_run):
    """With max_steps=0 nothing trains: student block j equals teacher block init_layers[j]."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_spectralkd.recipes import load_recipe
    from hf_spectralkd.tasks.text import copy_teacher_layers

    teacher = AutoModelForSequenceClassification.from_pretrained(os.path.join(workspace["out"], "teacher"))
    student = copy_teacher_layers(teacher, [2, 4])
    assert student.config.num_hidden_layers == 2
    assert torch.equal(
        student.bert.encoder.layer[0].attention.self.query.weight,
        teacher.bert.encoder.layer[1].attention.self.query.weight,
    )
    assert torch.equal(
        student.bert.encoder.layer[1].output.dense.weight, teacher.bert.encoder.layer[3].output.dense.weight
    )
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match=r"init_layers \[7\] out of range: the teacher has 4 blocks"):
        copy_teacher_layers(teacher, [1, 7])
    assert load_recipe(workspace["recipe"]).student.num_layers == 2


def test_second_run_reuses_every_finished_stage(workspace, first_run):
    out = workspace["out"]
    markers = {
        stage: os.path.getmtime(os.path.join(out, stage, "stage_done.json"))
        for stage in ("teacher", "analysis", "student", "baseline")
    }
    results, lines = _run(workspace["recipe"])
    assert results["reused_stages"] == ["teacher", "analysis", "student", "baseline"]
    for stage, mtime in markers.items():
        assert os.path.getmtime(os.path.join(out, stage, "stage_done.json")) == mtime, stage
    assert any(line.startswith("[1/6 teacher] reusing") for line in lines)
    assert results["student"]["metrics"] == first_run[0]["student"]["metrics"]


def test_interrupted_run_keeps_finished_stages_and_resumes(workspace, first_run, monkeypatch):
    """Ctrl-C during distillation: teacher/analysis stay usable, no partial student; the next run resumes."""
    from hf_spectralkd import SpectralDistillationTrainer

    out = workspace["out"]
    teacher_marker = os.path.getmtime(os.path.join(out, "teacher", "stage_done.json"))

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    overrides = ["training.learning_rate=5e-4"]  # the student's inputs change: the student stage runs again
    with monkeypatch.context() as patch:
        patch.setattr(SpectralDistillationTrainer, "train", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _run(workspace["recipe"], overrides)
    assert not os.path.exists(os.path.join(out, ".student.tmp"))
    with open(os.path.join(out, "student", "stage_done.json")) as handle:
        old_fingerprint = json.load(handle)["fingerprint"]  # the previous complete student is untouched
    results, lines = _run(workspace["recipe"], overrides)
    assert results["reused_stages"] == ["teacher", "analysis"]
    assert os.path.getmtime(os.path.join(out, "teacher", "stage_done.json")) == teacher_marker
    with open(os.path.join(out, "student", "stage_done.json")) as handle:
        assert json.load(handle)["fingerprint"] != old_fingerprint
    assert results["training"]["learning_rate"] == pytest.approx(5e-4)


def test_evaluate_command_matches_the_pipeline(workspace, first_run, tmp_path):
    from hf_spectralkd.cli import main

    student = os.path.join(workspace["out"], "student")
    target = tmp_path / "metrics.json"
    assert (
        main(["evaluate", "--model", student, "--data", workspace["data"], "--split", "test", "--output", str(target)])
        == 0
    )
    payload = json.loads(target.read_text())
    with open(os.path.join(student, "..", "evaluation", "student.json")) as handle:
        expected = json.load(handle)["metrics"]
    assert payload["num_samples"] == 24
    assert payload["metrics"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert payload["metrics"]["macro_f1"] == pytest.approx(expected["macro_f1"])
    # a single test file works too; labels come from the model's id2label
    assert (
        main(
            [
                "evaluate",
                "--model",
                student,
                "--data",
                os.path.join(workspace["data"], "test.jsonl"),
                "--output",
                str(target),
            ]
        )
        == 0
    )
    assert json.loads(target.read_text())["metrics"]["accuracy"] == pytest.approx(expected["accuracy"])


def test_compare_command_on_the_saved_recipe_outputs(workspace, first_run, tmp_path, capsys):
    """`hf-spectralkd compare` on a finished run's teacher/ and student/: the student's layer_map.json gives the pairs,
    and the curves are the analysis of the same sampled texts."""
    import numpy as np
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_spectralkd import analyze
    from hf_spectralkd.cli import main
    from hf_spectralkd.sampling import sample_indices

    results, _ = first_run
    out, run = tmp_path / "cmp", workspace["out"]
    train = os.path.join(workspace["data"], "train.jsonl")
    assert (
        main(
            [
                "compare",
                "--teacher",
                os.path.join(run, "teacher"),
                "--student",
                os.path.join(run, "student"),
                "--data",
                train,
                "--max-samples",
                "16",
                "--seed",
                "5",
                "--max-length",
                "24",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "compare.json").read_text())
    layer_map = results["layer_map"]
    pairs = zip(layer_map["student_layers"], layer_map["teacher_layers"], strict=True)
    assert report["pairs"] == [list(p) for p in pairs]
    assert report["task"] == "text-classification" and report["num_samples"] == 16
    rows = load_dataset("json", data_files=train, split="train")
    rows = rows.select(sample_indices(len(rows), 16, 5))
    for role in ("teacher", "student"):
        path = os.path.join(run, role)
        model = AutoModelForSequenceClassification.from_pretrained(path)
        expected = analyze(model, rows, tokenizer=AutoTokenizer.from_pretrained(path), max_length=24, progress=False)
        np.testing.assert_allclose(report[role]["intensity"], expected.intensity.numpy(), rtol=1e-5)
    printed = capsys.readouterr().out
    assert "pearson_aligned" in printed and f"student 1 <-> teacher {layer_map['teacher_layers'][0]}" in printed


# ---------------------------------------------------------------------------------------------- errors
def _error_case(workspace, tmp_path, files=None, overrides=()):
    """Write a data folder (train/validation/test, optionally altered) and return (recipe path, overrides, out dir)."""
    data = tmp_path / "data"
    data.mkdir()
    rows = {"train": _subset("train", 4), "validation": _subset("validation", 2), "test": _subset("test", 2)}
    for split, content in {**rows, **(files or {})}.items():
        if isinstance(content, str):
            (data / f"{split}.jsonl").write_text(content)
        else:
            _write_jsonl(data / f"{split}.jsonl", content)
    out = tmp_path / "out"
    return workspace["recipe"], [f"data.source={data}", f"output.dir={out}", *overrides], str(out)


ERROR_CASES = {
    "missing data file": (
        {},
        ["data.test_file=/nonexistent/test.jsonl"],
        r"the test file '/nonexistent/test.jsonl' does not exist",
    ),
    "missing column": (
        {},
        ["data.text_column=utterance"],
        r"column\(s\) 'utterance' not found in .*train.jsonl; the columns are text, label",
    ),
    "labels in test not in train": (
        {"test": [{"text": "sing me a song", "label": "karaoke"}, {"text": "what time", "label": "timer"}]},
        [],
        r"the test split has 1 label\(s\) that the training split does not have \('karaoke'\)",
    ),
    "empty split": ({"validation": ""}, [], r"the validation split \(.*validation.jsonl\) is empty"),
    "nonexistent model path": (
        {},
        ["teacher.base=./no_such_model"],
        r"teacher.base: the path .*no_such_model.* does not exist",
    ),
    "hub model id offline": (
        {},
        ["teacher.base=someone/some-model"],
        r"'someone/some-model' .* Hub is unreachable .*local copy",
    ),
    "hub dataset id offline": (
        {},
        ["data.source=someone/intents"],
        r"'someone/intents' .* Hub is unreachable .*local copy",
    ),
    "bad distillation value": ({}, ["distillation.alpha=1.5"], r"alpha must be in \[0, 1\], got 1.5"),
    "hub push while offline": (
        {},
        ["hub.push_to_hub=true", "hub.hub_model_id=me/student"],
        r"hub.push_to_hub is set but the Hub is unreachable",
    ),
    "student deeper than the teacher": (
        {},
        ["student.num_layers=6"],
        r"student.num_layers=6 but the teacher has only 4 blocks to copy from",
    ),
    "teacher layer out of range": (
        {},
        ["distillation.teacher_layers=[1,9]", "distillation.student_layers=[1,2]"],
        r"distillation.teacher_layers \[9\] out of range: .* are 0..4",
    ),
    "more aligned layers than the teacher has": (
        {},
        ["distillation.num_aligned_layers=5", "student.init=config", "student.num_layers=6"],
        r"distillation.num_aligned_layers=5: cannot align 5 .* 4 blocks",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_before_any_work_leave_nothing_behind(workspace, tmp_path, monkeypatch, case):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files, extra, message = ERROR_CASES[case]
    recipe, overrides, out = _error_case(workspace, tmp_path, files, extra)
    with pytest.raises(ValueError, match=message):
        _run(recipe, overrides)
    assert not os.path.exists(out)


def test_multi_process_launch_is_refused_before_any_work(workspace, tmp_path, monkeypatch, capsys):
    from hf_spectralkd.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "out"
    assert main(["distill", "--config", workspace["recipe"], f"output.dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "runs its stages in one process, but it was launched in 2 (WORLD_SIZE=2)" in err
    assert "accelerate launch --config_file recipes/accelerate/" in err and "Traceback" not in err
    assert not os.path.exists(out)


def test_analysis_reads_the_trainers_sample_and_follows_the_selection_settings(
    workspace, first_run, tmp_path, monkeypatch
):
    """The analysis stage reads the seeded random sample the trainer's own selection would (not the first rows of a
    label-sorted file), and a new layer_selection re-runs it so the graph and profile show the layers used."""
    import shutil

    import hf_spectralkd.sampling as sampling

    out = tmp_path / "run"
    shutil.copytree(workspace["out"], out)
    _run(
        workspace["recipe"], [f"output.dir={out}"]
    )  # every stage at the recipe's own settings (earlier tests change them)
    calls = []
    real = sampling.sample_indices

    def spy(size, n, seed=0):
        calls.append((size, n, seed))
        return real(size, n, seed)

    monkeypatch.setattr(sampling, "sample_indices", spy)
    results, lines = _run(workspace["recipe"], [f"output.dir={out}", "distillation.layer_selection=uniform"])
    # the analysis ran again for the new strategy (its graph shows the chosen layers), the student with it; the
    # no-KD baseline does not depend on the alignment and is reused
    assert results["reused_stages"] == ["teacher", "baseline"]
    assert calls and calls[0] == (72, 16, 42)  # 72 training rows, selection_samples 16, training seed 42
    picked = real(72, 16, 42)
    assert picked != list(range(16)) and max(picked) >= 48  # rows of all three intents, not only the first one's
    teacher_layers = results["layer_map"]["teacher_layers"]
    assert teacher_layers == [2, 4] and results["layer_map"]["strategy"] == "uniform"
    for stage in ("analysis", "student"):
        with open(out / stage / "spectral_profile.json") as handle:
            meta = json.load(handle)["metadata"]
        assert meta["strategy"] == "uniform" and meta["selected_layers"] == teacher_layers, stage


@pytest.mark.parametrize(
    "override, message",
    [
        ("distillation.alpha=3", r"alpha must be in \[0, 1\], got 3"),
        ("distillation.layer_selection=best",
         r"layer_selection must be one of topk, ends, uniform, entropy, last or manual"),
        ("training.eval_strategy=bogus", r"distillation/training sections: bogus is not a valid IntervalStrategy"),
        ("data.source=/nope", r"data.source '/nope' does not exist"),
        ("student.num_layers=6", r"student.num_layers=6 but the teacher has only 4 blocks"),
    ],
)
def test_dry_run_makes_the_real_runs_checks_and_writes_nothing(
    workspace, tmp_path, capsys, monkeypatch, override, message
):
    import re

    from hf_spectralkd.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    assert main(["distill", "--config", workspace["recipe"], "--dry-run", override, f"output.dir={out}"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err, err
    assert not out.exists()
    assert main(["distill", "--config", workspace["recipe"], "--dry-run", f"output.dir={out}"]) == 0
    assert "name: tiny_clinc" in capsys.readouterr().out and not out.exists()


def test_output_dir_that_is_a_file_and_evaluate_ranges(workspace, first_run, tmp_path, capsys, monkeypatch):
    from hf_spectralkd.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert main(["distill", "--config", workspace["recipe"], f"output.dir={taken}"]) == 2
    assert "output.dir" in capsys.readouterr().err and taken.read_text() == "x"
    student = os.path.join(workspace["out"], "student")
    assert main(["evaluate", "--model", student, "--data", workspace["data"], "--max-samples", "0"]) == 2
    assert "--max-samples must be >= 1, got 0" in capsys.readouterr().err
    for option in ("--batch-size", "--max-length"):
        assert main(["evaluate", "--model", student, "--data", workspace["data"], option, "0"]) == 2
        assert f"{option} must be >= 1, got 0" in capsys.readouterr().err
    assert main(["evaluate", "--model", student, "--data", workspace["data"], "--output", str(tmp_path)]) == 2
    assert "is a directory: pass the path of a JSON file" in capsys.readouterr().err
    assert main(["card", "--run-dir", str(tmp_path / "nope")]) == 2
    assert "--run-dir '" in capsys.readouterr().err


def test_unknown_recipe_key_through_the_cli(workspace, tmp_path, capsys):
    from hf_spectralkd.cli import main

    data = yaml.safe_load(open(workspace["recipe"]))
    data["evaluation"]["baseline_runs"] = 2
    data["output"]["dir"] = str(tmp_path / "out")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["distill", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'evaluation.baseline_runs' in" in err and "bad.yaml" in err
    assert "did you mean 'evaluation.baseline'" in err
    assert not os.path.exists(tmp_path / "out")


def test_distill_help_lists_options_with_defaults(capsys):
    from hf_spectralkd.cli import main

    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = capsys.readouterr().out
    assert "--config" in text and "--smoke" in text and "(default: False)" in text and "results.json" in text


def test_teacher_cache_option_trains_from_the_cache(workspace, first_run, tmp_path):
    """`teacher.cache: true`: the student stage builds <out>/teacher_cache once (fingerprinted), trains from it with
    losses equal to the live teacher's within float16 tolerance, and a later run reuses the cache."""
    import shutil

    from hf_spectralkd.constants import CACHE_META_FILENAME
    from hf_spectralkd.teacher_cache import TeacherCache

    out, live_out = tmp_path / "run", tmp_path / "live"
    shutil.copytree(workspace["out"], out)
    shutil.copytree(workspace["out"], live_out)
    same = ["training.learning_rate=2e-3"]  # a student stage neither copy has run yet: both train from scratch
    _run(workspace["recipe"], [f"output.dir={live_out}", *same])
    results, lines = _run(workspace["recipe"], [f"output.dir={out}", "teacher.cache=true", *same])
    assert results["reused_stages"] == ["teacher", "analysis"]  # the student stage ran, with the cache
    assert any("teacher cache:" in line and "training read the teacher's outputs from it" in line for line in lines)
    cache = TeacherCache(str(out / "teacher_cache"))
    assert len(cache) == 72 and cache.teacher_layers == results["layer_map"]["teacher_layers"]
    live = [
        e
        for e in json.load(open(live_out / "student" / "training_log.json"))
        if "freq_loss" in e and "eval_loss" not in e
    ]
    cached = [
        e for e in json.load(open(out / "student" / "training_log.json")) if "freq_loss" in e and "eval_loss" not in e
    ]
    assert len(live) == len(cached) == 3
    for a, b in zip(live, cached, strict=True):
        for key in ("kd_loss", "freq_loss", "ce_loss"):
            assert b[key] == pytest.approx(a[key], rel=2e-2, abs=1e-4), key
    meta_mtime = os.path.getmtime(out / "teacher_cache" / CACHE_META_FILENAME)
    _run(workspace["recipe"], [f"output.dir={out}", "teacher.cache=true", "training.learning_rate=5e-4"])
    assert (
        os.path.getmtime(out / "teacher_cache" / CACHE_META_FILENAME) == meta_mtime
    )  # same teacher, inputs, layers: reused


def test_teacher_cache_option_with_logit_kd_caches_the_logits_only(workspace, tmp_path, monkeypatch):
    """`teacher.cache: true` with `distillation.beta: 0`: the student stage trains from a logits-only cache."""
    from hf_spectralkd.teacher_cache import TeacherCache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    results, lines = _run(workspace["recipe"], [f"output.dir={out}", "teacher.cache=true", "distillation.beta=0"])
    assert any("teacher cache:" in line and "training read the teacher's outputs from it" in line for line in lines)
    cache = TeacherCache(str(out / "teacher_cache"))
    assert len(cache) == 72 and cache.teacher_layers == [] and cache.hidden is None
    assert not os.path.exists(out / "teacher_cache" / "hidden.npy")
    assert results["layer_map"]["teacher_layers"] == []


def test_preflight_resolves_a_frozen_plan_once(workspace, tmp_path):
    """The plan holds the built arguments (output dirs in the stages' temporary folders) and each stage's
    fingerprint; the student's fingerprint follows its init layers and training settings, not the teacher's."""
    import dataclasses

    from hf_spectralkd.pipeline import RunPlan, preflight
    from hf_spectralkd.recipes import load_recipe

    out = tmp_path / "out"
    plan = preflight(load_recipe(workspace["recipe"], [f"output.dir={out}"]))
    assert isinstance(plan, RunPlan) and plan.out == str(out) and not out.exists()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.out = "elsewhere"
    assert plan.label_names == LABELS and plan.aligned_layers == 2 and plan.eval_batch_size == 32
    assert plan.distill_args.output_dir == str(out / ".student.tmp") and plan.distill_args.beta == pytest.approx(0.2)
    assert plan.baseline_args.output_dir == str(out / ".baseline.tmp")
    assert plan.teacher_args.output_dir == str(out / ".teacher.tmp" / "_trainer") and plan.teacher_args.max_steps == 3
    assert plan.training_values["learning_rate"] == pytest.approx(1e-3) and plan.training_values["seed"] == 42
    fps = plan.fingerprints
    # complete at preflight: the init layers are what the analysis stage returns, never patched into the plan
    assert fps.teacher and fps.profile and fps.analysis and fps.student and fps.baseline
    assert not hasattr(plan, "init_layers") and not hasattr(plan, "with_init_layers")
    rule = preflight(load_recipe(workspace["recipe"], [f"output.dir={out}", "student.init_layers=topk"]))
    assert rule.fingerprints.student != fps.student and rule.fingerprints.baseline != fps.baseline
    other = preflight(load_recipe(workspace["recipe"], [f"output.dir={out}", "training.learning_rate=5e-4"]))
    assert other.fingerprints.teacher == fps.teacher and other.fingerprints.analysis == fps.analysis
    assert other.fingerprints.student != fps.student
    strategy = preflight(load_recipe(workspace["recipe"], [f"output.dir={out}", "distillation.layer_selection=ends"]))
    assert strategy.fingerprints.profile == fps.profile and strategy.fingerprints.analysis != fps.analysis
    assert strategy.fingerprints.baseline == fps.baseline  # uniform init layers read no selection setting
    selected = preflight(load_recipe(workspace["recipe"], [f"output.dir={out}", "student.init_layers=selected"]))
    ends = preflight(load_recipe(workspace["recipe"], [f"output.dir={out}", "student.init_layers=selected",
                                                       "distillation.layer_selection=ends"]))
    assert ends.fingerprints.baseline != selected.fingerprints.baseline  # "selected" reads it
