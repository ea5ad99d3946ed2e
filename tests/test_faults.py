"""Faults a user meets (issue 15), one class at a time, on a tiny BERT teacher and a 3-intent CLINC150 subset:
stale reuse, folders that are not the run's, non-finite numbers, bad labels, results out of step with the run,
damaged state, a run killed with SIGKILL, late or vague errors, silent substitutions."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from test_pipeline import LABELS, _subset, _write_jsonl

from hf_spectralkd.constants import RESULTS_FILENAME, RUN_MARKER, STAGE_MARKER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save_classifier(path, tokenizer, seed, vocab_size=None, positions=64, num_labels=3):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size or tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=positions,
                        num_labels=num_labels, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in
                                                                                            enumerate(LABELS)})
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A given 3-label teacher (teacher.model), the data folder and a recipe writing to <root>/run."""
    from transformers import AutoTokenizer

    from hf_spectralkd.loading import packaged_minilm_path

    root = tmp_path_factory.mktemp("faults")
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    _save_classifier(root / "teacher", tokenizer, seed=0)
    data = root / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", _subset("train", 16))
    _write_jsonl(data / "validation.jsonl", _subset("validation", 4))
    _write_jsonl(data / "test.jsonl", _subset("test", 6))
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(fault_recipe(root, data)))
    return {"root": root, "recipe": str(path), "data": data, "tokenizer": tokenizer, "teacher": root / "teacher"}


def fault_recipe(root, data, name="faults") -> dict:
    """The tiny recipe of the fault tests: the given teacher <root>/teacher, ``data``, output in <root>/run."""
    return {
        "name": name,
        "teacher": {"model": str(root / "teacher")},
        "student": {"init": "teacher_layers", "num_layers": 2, "init_layers": "uniform"},
        "data": {"source": str(data), "max_length": 24},
        "distillation": {"beta": 0.2, "selection_samples": 16, "dynamics_samples": 8, "spectral_dynamics": False},
        "training": {"max_steps": 2, "per_device_train_batch_size": 8, "learning_rate": "1e-3", "logging_steps": 1,
                     "disable_tqdm": True, "eval_strategy": "no"},
        "evaluation": {"split": "test", "baseline": False},
        "output": {"dir": str(root / "run")},
    }


def _run(space, out, *overrides, log=None):
    from hf_spectralkd.pipeline import run_pipeline
    from hf_spectralkd.recipes import load_recipe

    lines = [] if log is None else log
    results = run_pipeline(load_recipe(space["recipe"], [f"output.dir={out}", *overrides]), log=lines.append)
    return results, lines


def _data_dir(space, tmp_path, **files):
    """A copy of the data folder with some files replaced (a list of rows, or raw bytes / text)."""
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        content = files.get(split, (space["data"] / f"{split}.jsonl").read_bytes())
        target = data / f"{split}.jsonl"
        if isinstance(content, list):
            _write_jsonl(target, content)
        else:
            target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return data


# ---------------------------------------------------------------------------------------------- 1. stale reuse
def test_replaced_teacher_weights_and_changed_eval_data_are_not_reused(space, tmp_path):
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(space["teacher"], teacher)
    out = tmp_path / "run"
    first, _ = _run(space, out, f"teacher.model={teacher}")
    profile_before = (out / "analysis" / "spectral_profile.json").read_text()
    eval_before = json.loads((out / "evaluation" / "teacher.json").read_text())["fingerprint"]
    # the same path, other weights: nothing downstream of the teacher may be reused
    _save_classifier(teacher, space["tokenizer"], seed=7)
    second, lines = _run(space, out, f"teacher.model={teacher}")
    assert not any("reusing" in line for line in lines), lines
    assert (out / "analysis" / "spectral_profile.json").read_text() != profile_before
    assert json.loads((out / "evaluation" / "teacher.json").read_text())["fingerprint"] != eval_before
    assert second["stages"]["analysis"] != first["stages"]["analysis"]
    # a test file with the same number of rows but other content: the stored evaluations are redone
    eval_second = json.loads((out / "evaluation" / "teacher.json").read_text())["fingerprint"]
    rows = _subset("test", 6)
    data = _data_dir(space, tmp_path, test=rows[:3] + [dict(rows[3], text="what's the weather in paris")] + rows[4:])
    _run(space, out, f"teacher.model={teacher}", f"data.source={data}")
    assert json.loads((out / "evaluation" / "teacher.json").read_text())["fingerprint"] not in (eval_before,
                                                                                               eval_second)


def test_model_content_fingerprint_follows_the_weights(space, tmp_path):
    import shutil

    from hf_spectralkd.pipeline.state import model_content_fingerprint

    model = tmp_path / "m"
    shutil.copytree(space["teacher"], model)
    before = model_content_fingerprint(str(model))
    assert model_content_fingerprint(str(model)) == before
    _save_classifier(model, space["tokenizer"], seed=3)
    after = model_content_fingerprint(str(model))
    assert after["files"]["model.safetensors"] != before["files"]["model.safetensors"]
    assert model_content_fingerprint("org/name") == {"reference": "org/name"}


# ---------------------------------------------------------------------------------------------- 2. not our files
@pytest.mark.parametrize("folder", ["student", "teacher", "analysis", "baseline"])
def test_a_stage_folder_the_run_did_not_write_is_never_deleted(space, tmp_path, folder):
    out = tmp_path / "run"
    (out / folder).mkdir(parents=True)
    (out / folder / "my_model.bin").write_bytes(b"user data")
    with pytest.raises(ValueError, match=rf"{out / folder} exists but was not written by an hf-spectralkd run .*"
                                         r"nothing was deleted"):
        _run(space, out)
    assert (out / folder / "my_model.bin").read_bytes() == b"user data"
    assert sorted(n for n in os.listdir(out) if n != RUN_MARKER) == [folder]


def test_run_stage_refuses_to_replace_a_folder_without_marker(tmp_path):
    from types import SimpleNamespace

    from hf_spectralkd.pipeline import run_stage

    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not written by an hf-spectralkd run"):
        run_stage(SimpleNamespace(out=str(tmp_path)), "student", "fp", lambda d: None, log=lambda line: None)
    assert (tmp_path / "student" / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------- 3. non-finite numbers
@pytest.mark.parametrize("override, message", [
    ("distillation.temperature=.inf", "temperature must be a finite number, got inf"),
    ("distillation.alpha=.nan", r"alpha must be"),
    ("distillation.beta=.inf", "beta must be a finite number, got inf"),
    ("training.learning_rate=.nan", "learning_rate must be a finite number, got nan"),
    ("training.weight_decay=.inf", "weight_decay must be a finite number, got inf"),
    ("teacher.finetune.learning_rate=.nan", "teacher.finetune: learning_rate must be a finite number"),
])
def test_non_finite_settings_fail_before_any_work(space, tmp_path, override, message):
    out = tmp_path / "run"
    extra = [f"teacher.base={space['teacher']}", "teacher.model=null"] if override.startswith("teacher.") else []
    with pytest.raises(ValueError, match=message):
        _run(space, out, *extra, override)
    assert not out.exists()


def test_a_nan_loss_stops_training_naming_step_and_term_and_saves_nothing(space, tmp_path, monkeypatch):
    from hf_spectralkd import SpectralDistillationTrainer
    from hf_spectralkd.guards import NonFiniteLossError

    real = SpectralDistillationTrainer.logit_kd_loss

    def nan_kd(*args, **kwargs):
        return real(*args, **kwargs) * float("nan")

    monkeypatch.setattr(SpectralDistillationTrainer, "logit_kd_loss", staticmethod(nan_kd))
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at step 1 \(non-finite term: kd_loss=nan\)"):
        _run(space, out)
    # no student, no results.json, no card (the run's marker says the folder is a run's)
    assert sorted(n for n in os.listdir(out) if n != RUN_MARKER) == ["analysis"]


def test_a_diverged_baseline_is_not_saved(space, tmp_path, monkeypatch):
    from transformers import Trainer

    from hf_spectralkd.guards import NonFiniteLossError

    real = Trainer.train

    def diverging(self, *args, **kwargs):  # the plain Trainer hides a NaN loss from its logs: the weights tell
        output = real(self, *args, **kwargs)
        if type(self) is Trainer:
            with torch.no_grad():
                self.model.classifier.weight.fill_(float("nan"))
        return output

    monkeypatch.setattr(Trainer, "train", diverging)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"the trained baseline has non-finite weights \(e.g. "
                                                 r"classifier.weight\): training diverged, so it was not saved"):
        _run(space, out, "evaluation.baseline=true")
    assert (out / "student" / STAGE_MARKER).exists() and not (out / "baseline").exists()
    assert not (out / ".baseline.tmp").exists() and not (out / RESULTS_FILENAME).exists()


def test_non_finite_teacher_outputs_in_the_cache_stop_training(tmp_path):
    import numpy as np
    from test_cache import _dataset, _trainer

    import hf_spectralkd.teacher_cache as tc

    directory = str(tmp_path / "cache")
    cache = tc.enable_teacher_cache(_trainer(tmp_path, _dataset()), directory)
    logits = np.load(os.path.join(directory, "logits.npy"), mmap_mode="r+")
    logits[:] = np.inf
    logits.flush()
    del logits, cache
    trainer = _trainer(tmp_path, _dataset())
    tc.enable_teacher_cache(trainer, directory)
    with pytest.raises(ValueError, match=r"logits.npy holds non-finite values .* training stopped"):
        trainer.train()


# ---------------------------------------------------------------------------------------------- 4. labels
def _rows(n=6):
    return _subset("train", 16)[:n] + _subset("train", 16)[-n:]


LABEL_CASES = {
    "single class": ([{"text": f"set a timer {i}", "label": "timer"} for i in range(8)],
                     r"train.jsonl, column 'label': the training split has 1 class\(es\) \(timer\); .*at least 2"),
    "null label": (_rows()[:3] + [{"text": "hello", "label": None}] + _rows()[3:],
                   r"train.jsonl, line 4, column 'label': the label is missing \(null\)"),
    "missing label": (_rows()[:2] + [{"text": "hello"}] + _rows()[2:],
                      r"train.jsonl, line 3, column 'label': the label is missing \(null\)"),
    "mixed int and str": (_rows()[:5] + [{"text": "hello", "label": 1}] + _rows()[5:],
                          r"train.jsonl, line 6, column 'label': the label 1 is a number but line 1 has the str"),
    "null text": (_rows()[:1] + [{"text": None, "label": "timer"}] + _rows()[1:],
                  r"train.jsonl, line 2, column 'text': the text is missing \(null\)"),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_label_problems_name_file_line_and_column_before_any_work(space, tmp_path, case):
    rows, message = LABEL_CASES[case]
    data = _data_dir(space, tmp_path, train=rows)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        _run(space, out, f"data.source={data}")
    assert not out.exists()


def test_label_checks_of_csv_and_in_memory_rows_name_the_row():
    from datasets import Dataset

    from hf_spectralkd.tasks.validation import check_labelled_rows

    rows = Dataset.from_dict({"text": ["a", "b", "c"], "label": ["x", None, "y"]})
    with pytest.raises(ValueError, match=r"data: train.csv, row 2, column 'label': the label is missing"):
        check_labelled_rows(rows, "train.csv", "label", ("text",))
    check_labelled_rows(Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}), "t", "label", ("text",), 2)


# ---------------------------------------------------------------------------------------------- 5. results in step
def test_card_and_push_refuse_results_of_another_student(space, tmp_path, monkeypatch, capsys):
    import hf_spectralkd.pipeline as pipeline
    from hf_spectralkd.cli import main

    out = tmp_path / "run"
    _run(space, out)
    assert main(["card", "--run-dir", str(out)]) == 0
    recorded = json.loads((out / RESULTS_FILENAME).read_text())["stages"]
    marker = json.loads((out / "student" / STAGE_MARKER).read_text())
    assert recorded["student"] == {"fingerprint": marker["fingerprint"], "finished": marker["finished"]}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "evaluate_stage", killed)  # the new student is saved, results.json is not
    with pytest.raises(KeyboardInterrupt):
        _run(space, out, "training.learning_rate=5e-4")
    capsys.readouterr()
    assert main(["card", "--run-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "results.json describes the student finished at" in err and "a run stopped between stages" in err
    from hf_spectralkd.hub import push_student

    with pytest.raises(ValueError, match="describes the student finished at"):
        push_student(str(out), "me/student")
    monkeypatch.undo()
    _run(space, out, "training.learning_rate=5e-4")  # finishing the run rewrites results.json: the card works again
    assert main(["card", "--run-dir", str(out)]) == 0


# ---------------------------------------------------------------------------------------------- 6. damaged state
@pytest.mark.parametrize("damage", ["truncate profile", "truncate layer map", "delete weights"])
def test_a_damaged_stage_is_named_and_rebuilt(space, tmp_path, damage):
    out = tmp_path / "run"
    _run(space, out)
    target = {"truncate profile": out / "analysis" / "spectral_profile.json",
              "truncate layer map": out / "student" / "layer_map.json",
              "delete weights": out / "student" / "model.safetensors"}[damage]
    if damage == "delete weights":
        target.unlink()
    else:
        target.write_text(target.read_text()[:20])
    results, lines = _run(space, out)
    assert any(f"damaged: {target}" in line and "rebuilding it" in line for line in lines), lines
    assert target.exists() and (not target.name.endswith(".json") or json.loads(target.read_text()))
    assert results["student"]["metrics"]["accuracy"] >= 0


def test_a_marker_without_files_is_damage(tmp_path):
    from hf_spectralkd.pipeline.state import stage_damage

    (tmp_path / STAGE_MARKER).write_text(json.dumps({"fingerprint": "x"}))
    assert "holds only its stage_done.json" in stage_damage(str(tmp_path), {"fingerprint": "x"})


def test_a_truncated_teacher_cache_is_named_and_rebuilt(tmp_path, caplog):
    from test_cache import _dataset, _trainer

    import hf_spectralkd.teacher_cache as tc

    directory = str(tmp_path / "cache")
    tc.enable_teacher_cache(_trainer(tmp_path, _dataset()), directory)
    hidden = os.path.join(directory, "hidden.npy")
    size = os.path.getsize(hidden)
    with open(hidden, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(tc.DamagedCacheError, match=r"hidden.npy is damaged or missing"):
        tc.TeacherCache(directory)
    with pytest.raises(tc.DamagedCacheError):
        tc.enable_teacher_cache(_trainer(tmp_path, _dataset()), directory, rebuild=False)
    with caplog.at_level("WARNING"):
        healed = tc.enable_teacher_cache(_trainer(tmp_path, _dataset()), directory)
    assert os.path.getsize(hidden) == size and len(healed) == 40 and "rebuilding it" in caplog.text


# ---------------------------------------------------------------------------------------------- 7. kill -9 and resume
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from hf_spectralkd import SpectralDistillationTrainer
    from hf_spectralkd.pipeline import run_pipeline
    from hf_spectralkd.recipes import load_recipe

    real = SpectralDistillationTrainer.training_step

    def step(self, *args, **kwargs):
        if self.state.global_step == 3:  # checkpoint-2 is on disk, step 3 is half done: kill -9
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args, **kwargs)

    SpectralDistillationTrainer.training_step = step
    run_pipeline(load_recipe(sys.argv[1], sys.argv[2:]), log=print)
""")


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(space, tmp_path, monkeypatch):
    from hf_spectralkd import SpectralDistillationTrainer

    out = tmp_path / "run"
    overrides = [f"output.dir={out}", "training.max_steps=6", "training.save_steps=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, space["recipe"], *overrides], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    partial = out / ".student.tmp"
    assert (partial / "checkpoint-2" / "trainer_state.json").exists() and not (out / "student").exists()
    assert json.loads((partial / "partial.json").read_text())["pid"] != os.getpid()

    steps, resumed_from = [], []
    real_step, real_train = SpectralDistillationTrainer.training_step, SpectralDistillationTrainer.train

    def counting(self, *args, **kwargs):
        steps.append(self.state.global_step)
        return real_step(self, *args, **kwargs)

    def train(self, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        return real_train(self, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(SpectralDistillationTrainer, "training_step", counting)
    monkeypatch.setattr(SpectralDistillationTrainer, "train", train)
    _, lines = _run(space, out, "training.max_steps=6", "training.save_steps=2")
    assert resumed_from == [str(partial / "checkpoint-2")]
    assert steps == [2, 3, 4, 5]  # steps 3..6 (global_step before each), not from step 1
    assert any("resuming from" in line and "checkpoint-2" in line for line in lines), lines
    assert not partial.exists() and not [n for n in os.listdir(out / "student") if n.startswith("checkpoint-")]
    log = json.loads((out / "student" / "training_log.json").read_text())
    assert max(entry.get("step", 0) for entry in log) == 6


def test_leftovers_of_dead_runs_are_removed_and_a_live_run_is_refused(tmp_path):
    import socket

    from hf_spectralkd.pipeline.state import claim_tmp_dir

    tmp = tmp_path / ".student.tmp"
    (tmp / "checkpoint-4").mkdir(parents=True)
    (tmp / "checkpoint-4" / "big.bin").write_bytes(b"0" * 100)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"fingerprint": "old", "pid": int(dead.stdout), "host": socket.gethostname()}
    (tmp / "partial.json").write_text(json.dumps(record))
    assert claim_tmp_dir(str(tmp), "new") is False  # another fingerprint, a dead run: removed
    assert os.listdir(tmp) == ["partial.json"]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp / "partial.json").write_text(json.dumps({**record, "pid": live.pid}))
        with pytest.raises(ValueError, match=rf"being written by another run \(process {live.pid}, still running\)"):
            claim_tmp_dir(str(tmp), "new")
    finally:
        live.kill()
        live.wait()


# ---------------------------------------------------------------------------------------------- 8. late errors
def _dry_run(space, tmp_path, capsys, *overrides, recipe=None):
    from hf_spectralkd.cli import main

    out = tmp_path / "run"
    code = main(["distill", "--config", recipe or space["recipe"], "--dry-run", f"output.dir={out}", *overrides])
    assert not out.exists()
    return code, capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("training.learning_rate=-1e-4", "learning_rate must be >= 0, got -0.0001"),
    ("training.per_device_train_batch_size=0", "per_device_train_batch_size must be >= 1, got 0"),
    ("data.max_length=512", r"data.max_length=512 but the teacher \(teacher.model\) has 64 positions"),
])
def test_settings_that_failed_late_fail_in_dry_run(space, tmp_path, capsys, override, message):
    import re

    code, err = _dry_run(space, tmp_path, capsys, override)
    assert code == 2 and re.search(message, err), err


def test_malformed_jsonl_and_non_utf8_data_name_file_and_place(space, tmp_path, capsys):
    lines = (space["data"] / "train.jsonl").read_text().splitlines()
    bad = "\n".join(lines[:4] + ['{"text": "set a timer", "label": "timer"'] + lines[4:]) + "\n"
    data = _data_dir(space, tmp_path, train=bad)
    code, err = _dry_run(space, tmp_path, capsys, f"data.source={data}")
    assert code == 2 and f"{data / 'train.jsonl'}, line 5: malformed JSON" in err, err
    raw = (space["data"] / "test.jsonl").read_bytes()
    offset = raw.index(b"\n") + 5
    (data / "train.jsonl").write_bytes((space["data"] / "train.jsonl").read_bytes())
    (data / "test.jsonl").write_bytes(raw[:offset] + b"\xff" + raw[offset:])
    code, err = _dry_run(space, tmp_path, capsys, f"data.source={data}")
    assert code == 2 and f"{data / 'test.jsonl'} is not UTF-8 text: byte 0xff at byte offset {offset} (line 2)" in err


def test_recipe_errors_name_the_file(space, tmp_path, capsys):
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes(b"name: caf\xe9\n")
    code, err = _dry_run(space, tmp_path, capsys, recipe=str(recipe))
    assert code == 2 and f"recipe {recipe} is not UTF-8 text: byte 0xe9 at byte offset 9" in err, err
    code, err = _dry_run(space, tmp_path, capsys, recipe=str(tmp_path))
    assert code == 2 and "is a directory, not a recipe file" in err, err


def test_a_directory_that_is_not_a_model_says_what_is_missing(space, tmp_path, capsys):
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    code, err = _dry_run(space, tmp_path, capsys, f"teacher.model={empty}")
    assert code == 2 and f"teacher.model: {empty} is not a model directory: it has no config.json (it holds " \
                         "notes.txt)" in err, err
    (empty / "config.json").write_text("{}")
    code, err = _dry_run(space, tmp_path, capsys, f"teacher.model={empty}")
    assert code == 2 and "has a config.json but no weights" in err, err


def test_a_student_vocabulary_smaller_than_the_teachers_tokenizer_fails_in_dry_run(space, tmp_path, capsys):
    student = tmp_path / "student_model"
    _save_classifier(student, space["tokenizer"], seed=1, vocab_size=1000)
    code, err = _dry_run(space, tmp_path, capsys, "student.init=pretrained", f"student.model={student}",
                         "student.num_layers=null")
    assert code == 2 and "has a vocabulary of 1000 tokens but the teacher's tokenizer has" in err, err


# ---------------------------------------------------------------------------------------------- 9. substitutions
def test_a_student_with_another_tokenizer_of_the_same_size_is_refused(space, tmp_path, capsys):
    student = tmp_path / "student_model"
    _save_classifier(student, space["tokenizer"], seed=1)
    spec = json.loads((student / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    first, second = (token for token, i in vocab.items() if i in (2000, 2001))
    vocab[first], vocab[second] = vocab[second], vocab[first]  # same size, two ids swapped
    (student / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    for extra in ("vocab.txt",):
        if (student / extra).exists():
            (student / extra).unlink()
    code, err = _dry_run(space, tmp_path, capsys, "student.init=pretrained", f"student.model={student}",
                         "student.num_layers=null")
    assert code == 2 and "has its own tokenizer, which differs from the teacher's (e.g. token" in err, err
    assert "for the teacher and 200" in err


def test_an_attention_mask_of_the_wrong_shape_is_an_error(space):
    from hf_spectralkd.adapters import get_adapter
    from hf_spectralkd.guards import check_attention_mask
    from hf_spectralkd.loading import load_classifier

    hidden = torch.zeros(2, 5, 8)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 1, 5\) .* must be \(batch, tokens\) = "
                                         r"\(2, 5\)"):
        check_attention_mask(torch.ones(2, 1, 5), hidden, "model")
    check_attention_mask(torch.ones(2, 5), hidden)  # the right shape passes
    model = load_classifier(str(space["teacher"]))
    ids = torch.randint(5, 100, (2, 5))
    # BERT itself accepts a (batch, tokens, tokens) mask; the alignment loss would broadcast it: an error instead
    with pytest.raises(ValueError, match=r"BertForSequenceClassification: attention_mask has shape \(2, 5, 5\)"):
        get_adapter(model).forward(model, {"input_ids": ids, "attention_mask": torch.ones(2, 5, 5, dtype=torch.long)})
    assert get_adapter(model).forward(model, {"input_ids": ids, "attention_mask": torch.ones(2, 5)}).logits.shape == \
        (2, 3)
