"""run_stage (reuse, re-run on a new fingerprint, all-or-nothing folders, timing) and the recipe defaults the
pipeline reads from SpectralDistillationConfig; no model is built."""

import dataclasses
import json
import os
from types import SimpleNamespace

import pytest

from hf_spectralkd.pipeline import STAGE_MARKER, run_stage, stage_done


def _writer(calls, content="done"):
    def fn(directory):
        calls.append(directory)
        with open(os.path.join(directory, "out.txt"), "w") as handle:
            handle.write(content)

    return fn


def test_run_stage_writes_marker_and_reuses_while_fingerprint_matches(tmp_path):
    plan, calls, lines = SimpleNamespace(out=str(tmp_path)), [], []
    first = run_stage(plan, "teacher", "fp1", _writer(calls), log=lines.append, reusing="reuse", running="run")
    assert not first.reused and first.directory == str(tmp_path / "teacher") and lines == ["run"]
    assert calls == [str(tmp_path / ".teacher.tmp")]  # written in a temporary folder, then renamed
    marker = json.loads((tmp_path / "teacher" / STAGE_MARKER).read_text())
    assert marker["stage"] == "teacher" and marker["fingerprint"] == "fp1" and marker["seconds"] == first.seconds
    assert (tmp_path / "teacher" / "out.txt").read_text() == "done"
    assert sorted(os.listdir(tmp_path)) == ["teacher"]

    again = run_stage(plan, "teacher", "fp1", _writer(calls), log=lines.append, reusing="reuse", running="run")
    assert again.reused and again.seconds == first.seconds and len(calls) == 1 and lines == ["run", "reuse"]
    assert stage_done(str(tmp_path / "teacher"), "fp1") == marker


def test_run_stage_reruns_when_the_fingerprint_changes(tmp_path):
    plan, calls = SimpleNamespace(out=str(tmp_path)), []
    run_stage(plan, "student", "old", _writer(calls, "old"), log=lambda line: None)
    result = run_stage(plan, "student", "new", _writer(calls, "new"), log=lambda line: None)
    assert not result.reused and len(calls) == 2
    assert (tmp_path / "student" / "out.txt").read_text() == "new"
    assert stage_done(str(tmp_path / "student"), "new") and not stage_done(str(tmp_path / "student"), "old")


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failing_stage_leaves_nothing_behind_and_keeps_the_previous_one(tmp_path, error):
    plan = SimpleNamespace(out=str(tmp_path))
    run_stage(plan, "student", "old", _writer([], "old"), log=lambda line: None)

    def failing(directory):
        _writer([], "half")(directory)
        raise error

    with pytest.raises(type(error)):
        run_stage(plan, "student", "new", failing, log=lambda line: None)
    assert sorted(os.listdir(tmp_path)) == ["student"]  # no .student.tmp left
    assert (tmp_path / "student" / "out.txt").read_text() == "old"
    assert stage_done(str(tmp_path / "student"), "old")
    with pytest.raises(type(error)):
        run_stage(plan, "analysis", "fp", failing, log=lambda line: None)
    assert sorted(os.listdir(tmp_path)) == ["student"]


def test_stage_done_ignores_missing_or_broken_markers(tmp_path):
    assert stage_done(str(tmp_path / "nope"), "fp") is None
    (tmp_path / STAGE_MARKER).write_text("{not json")
    assert stage_done(str(tmp_path), "fp") is None


def test_recipe_defaults_come_from_the_config():
    from hf_spectralkd.distillation_config import SpectralDistillationConfig
    from hf_spectralkd.recipes import DataSection, Recipe, TeacherSection, distillation_default, smoke

    defaults = {f.name: f.default for f in dataclasses.fields(SpectralDistillationConfig)}
    for name in ("beta", "layer_selection", "selection_samples", "dynamics_samples", "include_embeddings"):
        assert distillation_default(name) == defaults[name], name
    recipe = Recipe(name="x", teacher=TeacherSection(model="m"), data=DataSection(source="d"),
                    distillation={"beta": 0})
    assert recipe.distillation_value("beta") == 0 and recipe.distillation_value("alpha") == defaults["alpha"]
    shrunk = smoke(recipe).distillation
    assert shrunk["selection_samples"] == min(defaults["selection_samples"], 64)
    assert shrunk["dynamics_samples"] == min(defaults["dynamics_samples"], 32)
