"""The model to use, chosen on the validation split after the baseline stage (results.json's ``recommended``):
the no-KD baseline when it leads the distilled student by more than evaluation.recommend_margin points, otherwise
the distilled student; the rule itself, the recipe field's validation, and no recommendation without a baseline."""

import json
import math
import os

import pytest
from test_transfer_pipeline import recipe_file, tiny  # noqa: F401 (tiny: the fixture, a tiny BERT + CLINC subset)

from hf_spectralkd.pipeline.report import quality_warnings, recommendation
from hf_spectralkd.recipes import load_recipe

# a teacher that learns nothing (one step at a negligible learning rate: its classifier stays random), a student
# that learns from it alone (alpha 1, no frequency term), and a baseline that trains on the labels
USELESS_TEACHER = {"max_steps": 1, "learning_rate": 1e-9, "select_best": False}
STUDENT_TRAINING = {"max_steps": 60, "learning_rate": "1e-2"}
PURE_KD = [("distillation.alpha", 1.0), ("distillation.beta", 0.0)]


def _run(path, overrides=()):
    from hf_spectralkd.pipeline import run_pipeline

    logs = []
    results = run_pipeline(load_recipe(path, overrides=list(overrides)), log=logs.append)
    return results, logs


def _count_evaluations(monkeypatch):
    """Record the split size of every evaluation the pipeline actually runs (cached ones are not counted)."""
    from hf_spectralkd.pipeline import stages

    calls = []
    real = stages.evaluate_model

    def counting(model, dataset, *args, **kwargs):
        calls.append(len(dataset))
        return real(model, dataset, *args, **kwargs)

    monkeypatch.setattr(stages, "evaluate_model", counting)
    return calls


@pytest.fixture(scope="module")
def useless_run(tiny):  # noqa: F811
    path = recipe_file(tiny, "useless", {}, teacher_extra=USELESS_TEACHER, training_extra=STUDENT_TRAINING)
    results, logs = _run(path, PURE_KD)
    return {"path": path, "out": tiny / "run_useless", "results": results, "logs": logs}


def test_a_useless_teacher_makes_the_no_kd_baseline_the_recommended_model(useless_run):
    out, results = useless_run["out"], useless_run["results"]
    recommended = results["recommended"]
    assert recommended["model"] == "baseline" and recommended["split"] == "validation"
    assert recommended["path"] == str(out / "baseline") == results["baseline"]["path"]
    # the recorded accuracies are the validation evaluations written under evaluation/ (the eval split is test)
    student_val = json.load(open(out / "evaluation" / "student_validation.json"))
    baseline_val = json.load(open(out / "evaluation" / "baseline_validation.json"))
    assert student_val["num_samples"] == baseline_val["num_samples"] == 18  # 6 validation rows x 3 intents
    assert recommended["student_accuracy"] == student_val["metrics"]["accuracy"]
    assert recommended["baseline_accuracy"] == baseline_val["metrics"]["accuracy"]
    assert recommended["baseline_accuracy"] > recommended["student_accuracy"]
    assert "distillation did not help here" in recommended["reason"]
    # the test-split evaluations are the results' metrics, written as before
    assert json.load(open(out / "evaluation" / "student.json"))["metrics"] == results["student"]["metrics"]
    assert results["eval_split"] == "test" and results["dataset"]["splits"]["validation"] == 18
    # results.json holds the same section, and RunResults reads it back
    from hf_spectralkd.results import RunResults

    on_disk = json.load(open(out / "results.json"))
    assert on_disk["recommended"] == recommended
    assert RunResults.load(out).recommended == recommended
    # the distilled student's folder is kept as it is
    assert os.path.isfile(out / "student" / "model.safetensors")
    assert os.path.isfile(out / "student" / "stage_done.json")
    # one line of summary.md (and of the printed summary) says which model to use and why
    summary = (out / "summary.md").read_text()
    use = [line for line in summary.splitlines() if line.startswith("**Use:**")]
    assert use == [f"**Use:** the no-KD student (baseline) in {out / 'baseline'} — {recommended['reason']}"]
    assert use[0] in useless_run["logs"][-1]
    assert any("choosing the model to use" in line and "validation split (18 examples)" in line
               for line in useless_run["logs"])
    # the quality warnings name the split they were measured on and point to the recommendation
    assert results["warnings"]
    for warning in results["warnings"]:
        assert "on the test split" in warning and "recommended on the validation split" in warning
        assert "'recommended' in results.json" in warning


def test_the_margin_changes_the_choice_and_nothing_is_evaluated_again(useless_run, monkeypatch):
    calls = _count_evaluations(monkeypatch)
    results, _ = _run(useless_run["path"], [*PURE_KD, ("evaluation.recommend_margin", 100.0)])
    recommended = results["recommended"]
    assert calls == []  # every stage and every evaluation reused: the margin is read, nothing retrained
    assert recommended["model"] == "student" and recommended["path"] == str(useless_run["out"] / "student")
    assert "within evaluation.recommend_margin (100 pt)" in recommended["reason"]
    assert recommended["baseline_accuracy"] == useless_run["results"]["recommended"]["baseline_accuracy"]


def test_with_validation_as_the_evaluation_split_the_recommendation_reuses_its_evaluations(useless_run, monkeypatch):
    calls = _count_evaluations(monkeypatch)
    results, _ = _run(useless_run["path"], [*PURE_KD, ("evaluation.split", "validation")])
    assert calls == [18, 18, 18]  # teacher, student, baseline on validation, once each
    recommended = results["recommended"]
    assert recommended["student_accuracy"] == results["student"]["metrics"]["accuracy"]
    assert recommended["baseline_accuracy"] == results["baseline"]["metrics"]["accuracy"]
    for warning in results["warnings"]:
        assert "on the validation split" in warning and "recommended on this split" in warning


def test_no_baseline_no_recommendation_and_no_extra_evaluation(tiny, monkeypatch):  # noqa: F811
    calls = _count_evaluations(monkeypatch)
    path = recipe_file(tiny, "nobaseline", {}, teacher_extra=USELESS_TEACHER, training_extra={"max_steps": 2})
    results, logs = _run(path, [*PURE_KD, ("evaluation.baseline", False)])
    out = tiny / "run_nobaseline"
    assert "recommended" not in results and results["baseline"] is None
    assert "recommended" not in json.load(open(out / "results.json"))
    assert calls == [24, 24]  # teacher and student on the test split only
    assert sorted(os.listdir(out / "evaluation")) == ["student.json", "teacher.json"]
    assert "**Use:**" not in (out / "summary.md").read_text()
    assert not any("choosing the model to use" in line for line in logs)


# ---------------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    "student, baseline, margin, expected",
    [
        (0.80, 0.85, 0.0, "baseline"),  # 5 pt behind, no margin
        (0.85, 0.80, 0.0, "student"),  # distillation helped
        (0.80, 0.80, 0.0, "student"),  # a tie keeps the distilled student
        (0.80, 0.85, 5.0, "student"),  # 5 pt behind with a 5 pt margin: not more than the margin
        (0.56, 0.57, 1.0, "student"),  # exactly the margin (0.57 * 100 is 56.99999...): still the student
        (0.56, 0.5701, 1.0, "baseline"),  # 1.01 pt: more than the margin
        (0.80, 0.8001, 0.0, "baseline"),  # any lead beats a zero margin
        (0.7778, 0.8502, 7.0, "baseline"),  # the measured low-label run: 7.24 pt
        (0.7778, 0.8502, 7.5, "student"),
    ],
)
def test_the_rule(student, baseline, margin, expected):
    chosen = recommendation(student, baseline, margin, "/run/student", "/run/baseline")
    assert chosen["model"] == expected
    assert chosen["path"] == f"/run/{expected}"
    assert chosen["split"] == "validation"
    assert chosen["student_accuracy"] == student and chosen["baseline_accuracy"] == baseline
    assert set(chosen) == {"model", "path", "split", "student_accuracy", "baseline_accuracy", "reason"}


def test_the_reasons_give_both_scores():
    chosen = recommendation(0.7778, 0.8502, 0.0, "s", "b")
    assert chosen["reason"] == ("on the validation split it scored 85.02% vs 77.78% for the distilled student "
                                "(7.24 pt ahead, more than evaluation.recommend_margin 0 pt); distillation did not "
                                "help here")
    assert recommendation(0.9, 0.8, 0.0, "s", "b")["reason"].endswith("distillation helped (10.00 pt)")
    assert "a tie keeps the distilled student" in recommendation(0.8, 0.8, 0.0, "s", "b")["reason"]
    assert "lead of 1.00 pt is within evaluation.recommend_margin (2 pt)" in recommendation(
        0.8, 0.81, 2.0, "s", "b")["reason"]


def test_warnings_point_to_the_recommendation_and_name_their_split():
    models = {"teacher": {"metrics": {"accuracy": 0.7898}}, "student": {"metrics": {"accuracy": 0.7778}}}
    baseline = {"metrics": {"accuracy": 0.8502}}
    recommended = recommendation(0.77, 0.84, 0.0, "s", "b")
    on_test = quality_warnings(models, baseline, "test", recommended)
    assert len(on_test) == 2
    assert all("on the test split" in w and "do not choose on the test split" in w for w in on_test)
    assert "7.24 pt below the no-KD student (85.02%)" in on_test[1]
    on_validation = quality_warnings(models, baseline, "validation", recommended)
    assert all("use the model recommended on this split" in w for w in on_validation)
    without = quality_warnings(models, baseline, "test", None)
    assert all("choose between them on a validation split, not on these test numbers" in w for w in without)
    assert quality_warnings(models, None, "test", None) == []


# ---------------------------------------------------------------------------------------------- the recipe field
@pytest.mark.parametrize("value", ["-1", ".nan", ".inf", "-0.5"])
def test_a_negative_or_non_finite_margin_is_a_clear_error(tiny, value):  # noqa: F811
    with pytest.raises(ValueError, match=r"evaluation\.recommend_margin in .* must be a finite number"):
        load_recipe(recipe_file(tiny, "badmargin", {}), overrides=[f"evaluation.recommend_margin={value}"])
    assert not os.path.exists(tiny / "run_badmargin")


def test_the_margin_defaults_to_zero_and_takes_points(tiny):  # noqa: F811
    assert load_recipe(recipe_file(tiny, "margin", {})).evaluation.recommend_margin == 0.0
    recipe = load_recipe(recipe_file(tiny, "margin", {}), overrides=["evaluation.recommend_margin=1.5"])
    assert recipe.evaluation.recommend_margin == 1.5 and math.isfinite(recipe.evaluation.recommend_margin)
    with pytest.raises(ValueError, match="'evaluation.recommend_margin' in .* must be a valid number"):
        load_recipe(recipe_file(tiny, "margin", {}), overrides=["evaluation.recommend_margin=lots"])


# ------------------------------------------------------------------------------------ card and push
def _pct(fraction):
    return f"{100 * fraction:.2f}%"


def test_the_card_of_a_student_its_run_recommends_against_says_so(useless_run):
    out, recommended = useless_run["out"], useless_run["results"]["recommended"]
    card = (out / "student" / "README.md").read_text()
    assert "**Model choice: the run recommends the no-KD student, not this model.**" in card
    assert (f"On the validation split the no-KD student (same architecture and init, cross-entropy only; saved at "
            f"`{out / 'baseline'}`) scored {_pct(recommended['baseline_accuracy'])} accuracy vs "
            f"{_pct(recommended['student_accuracy'])} for this model: distillation did not help here.") in card
    assert "so the run recommends this model" not in card


def _results(recommended):
    results = {
        "student": {"metrics": {"accuracy": 0.9}, "num_layers": 2},
        "teacher": {"metrics": {"accuracy": 0.95}, "num_layers": 4, "source": "teacher-dir"},
        "baseline": {"metrics": {"accuracy": 0.88}, "num_layers": 2, "path": "/elsewhere/baseline"},
        "eval_split": "test",
    }
    if recommended is not None:
        results["recommended"] = recommended
    return results


def test_the_card_states_a_recommended_student_and_nothing_without_a_choice():
    from hf_spectralkd.cards import build_model_card

    chosen = {"model": "student", "path": "/r/student", "split": "validation", "student_accuracy": 0.9037,
              "baseline_accuracy": 0.8847, "reason": "..."}
    text = str(build_model_card(_results(chosen), model_name="m"))
    assert ("**Model choice:** on the validation split this model scored 90.37% accuracy vs 88.47% for the no-KD "
            "student, so the run recommends this model.") in text
    assert "Model choice" not in str(build_model_card(_results(None), model_name="m"))
    # a recommendation of an unknown kind (a hand-edited results.json) is left out rather than misstated
    assert "Model choice" not in str(build_model_card(_results({**chosen, "model": "teacher"}), model_name="m"))


def test_pushing_a_student_its_run_recommends_against_warns_and_uploads_the_card_that_says_so(
    useless_run, monkeypatch
):
    from test_cards import FakeHfApi

    from hf_spectralkd.hub import push_student

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # read once, when huggingface_hub loads
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    api = FakeHfApi()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda *a, **k: api)
    out, recommended = useless_run["out"], useless_run["results"]["recommended"]
    with pytest.warns(UserWarning, match="its run recommends the no-KD student") as caught:
        push_student(out, "someone/useless-student")
    message = str(caught[0].message)
    assert str(out / "student") in message and str(out / "baseline") in message
    assert recommended["reason"] in message
    upload = dict(api.calls)["upload_folder"]
    assert upload["folder_path"] == str(out / "student")
    assert "the run recommends the no-KD student, not this model" in upload["card"]


def test_no_push_warning_when_the_run_recommends_the_distilled_student(tmp_path):
    from hf_spectralkd.hub import recommendation_notice
    from hf_spectralkd.results import RunResults

    student = {"model": "student", "path": str(tmp_path / "student"), "reason": "helped"}
    baseline = {"model": "baseline", "path": str(tmp_path / "baseline"), "reason": "did not help"}
    assert recommendation_notice(RunResults.from_dict(_results(student)), str(tmp_path / "student")) is None
    assert recommendation_notice(None, str(tmp_path / "student")) is None
    assert recommendation_notice(RunResults.from_dict(_results(None)), str(tmp_path / "student")) is None
    notice = recommendation_notice(RunResults.from_dict(_results(baseline)), str(tmp_path / "student"))
    assert notice.startswith(f"pushing the distilled student {tmp_path / 'student'}, but its run recommends")
