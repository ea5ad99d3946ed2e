"""Issue 24: the pipeline's candidate students (distillation.candidates: every candidate trained on the same budget
from one teacher cache, the best on validation kept, the test split read for it only), the teacher's stop reason,
and the spectral entropy in the run's outputs and card."""

import copy
import json
import os
import types

import pytest
from test_card_template import _card
from test_faults import _run, space  # noqa: F401 - the tiny teacher, data and recipe of the fault tests

from hf_spectralkd.constants import CANDIDATES_FILENAME, RESULTS_FILENAME
from hf_spectralkd.pipeline.stages import finetune_stop

CANDIDATES = "distillation.candidates=[{}, {beta: 0}, {alignment: mse, layer_selection: last}]"


@pytest.fixture(scope="module")
def candidates_run(space, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("candidates") / "run"
    results, log = _run(space, str(out), CANDIDATES, "teacher.cache=true", "evaluation.baseline=true",
                        "distillation.spectral_dynamics=false")
    return out, results, log


def test_every_candidate_is_trained_and_the_best_on_validation_is_the_student(candidates_run, space):  # noqa: F811
    from hf_spectralkd.pipeline.evaluation import evaluate_model

    out, results, log = candidates_run
    records = results["candidates"]
    assert [r["name"] for r in records] == [
        "c1 (the recipe's distillation settings)", "c2 (beta=0)", "c3 (alignment=mse, layer_selection=last)"]
    assert [r["overrides"] for r in records] == [{}, {"beta": 0.0}, {"alignment": "mse", "layer_selection": "last"}]
    assert sum(r["chosen"] for r in records) == 1
    scores = [r["metrics"]["accuracy"] for r in records]
    chosen = next(r for r in records if r["chosen"])
    assert chosen["index"] == scores.index(max(scores))  # the best, the earlier one on a tie
    assert all(r["split"] == "validation" and r["train_seconds"] > 0 for r in records)
    # the student folder is the chosen candidate: its validation accuracy, measured again here, is the record's
    student_dir = out / "student"
    assert not (student_dir / "candidates").exists() and not (out / ".student.tmp").exists()
    with open(student_dir / CANDIDATES_FILENAME) as handle:
        assert json.load(handle) == records
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from hf_spectralkd.pipeline.plan import preflight
    from hf_spectralkd.recipes import load_recipe

    recipe = load_recipe(space["recipe"], [f"output.dir={out}", CANDIDATES])
    plan = preflight(recipe)
    datasets = plan.task.prepare_datasets(recipe, plan.data, plan.processor)
    model = AutoModelForSequenceClassification.from_pretrained(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    measured = evaluate_model(model, datasets["validation"], DataCollatorWithPadding(tokenizer), batch_size=8,
                              compute_metrics=plan.task.compute_metrics(plan.label_names))
    assert measured["metrics"]["accuracy"] == pytest.approx(chosen["metrics"]["accuracy"], abs=1e-9)
    # results.json's distillation section is the chosen candidate's settings; the method is named after it
    expected_beta = 0.0 if chosen["index"] == 1 else 0.2
    assert results["distillation"]["beta"] == expected_beta
    assert results["method"] == {0: "SpectralKD", 1: "logit KD", 2: "hidden-state MSE KD"}[chosen["index"]]
    assert any(f"chosen on validation accuracy: {chosen['name']}" in line for line in log)


def test_the_candidates_share_one_teacher_cache_holding_every_aligned_layer(candidates_run):
    out, results, log = candidates_run
    with open(out / "teacher_cache" / "cache_meta.json") as handle:
        stored = json.load(handle)["fingerprint"]["teacher_layers"]
    with open(out / "analysis" / "spectral_profile.json") as handle:
        profile = json.load(handle)
    topk = profile["metadata"]["selected_layers"]  # c1: topk for the student's 2 blocks; c3: the last block (4)
    assert stored == sorted(set(topk) | {4})
    builds = [line for line in log if "building" in line.lower() and "cache" in line.lower()]
    assert len(builds) <= 1, builds


def test_the_card_shows_the_candidates_and_the_entropy(candidates_run):
    out, results, _ = candidates_run
    card = (out / "student" / "README.md").read_text()
    assert "**Candidate settings.**" in card
    for record in results["candidates"]:
        name = f"**{record['name']} (this model)**" if record["chosen"] else record["name"]
        assert f"| {name} | {100 * record['metrics']['accuracy']:.4f}"[:len(name) + 4] in card
    entropy = results["layer_map"]["teacher_entropy"]
    assert len(entropy) == 5 and all(0.0 < h <= 1.0 for h in entropy)  # embeddings + 4 blocks
    assert "Teacher spectral entropy per layer" in card
    summary = (out / "summary.md").read_text()
    kept = next(r for r in results["candidates"] if r["chosen"])
    assert (f"{kept['name']} {100 * kept['metrics']['accuracy']:.2f} (kept)") in summary
    assert summary.count("(kept)") == 1 and "Candidates (validation accuracy %): c1 (" in summary
    profile = json.loads((out / "analysis" / "spectral_profile.json").read_text())
    assert profile["entropy"] == pytest.approx(entropy)


@pytest.mark.parametrize(
    "value, message",
    [
        ("[{betaa: 1}]", r"distillation.candidates\[0\]: .*unknown key 'distillation.betaa'"),
        ("[{}, {}]", r"distillation.candidates\[1\] .* repeats candidate 0"),
        ("{beta: 0}", "must be a non-empty list of mappings"),
        ("[{beta: -1}]", r"distillation.candidates\[0\]: .*beta"),
        ("[{alignment: attention, projection: linear}]", r"distillation.candidates\[0\]: .*projection='none'"),
        ("[{num_aligned_layers: 9}]", r"distillation.candidates\[0\]: .*num_aligned_layers=9"),
    ],
)
def test_bad_candidates_fail_before_any_work(space, tmp_path, value, message):  # noqa: F811
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        _run(space, str(out), f"distillation.candidates={value}")
    assert not out.exists()


def _trainer(log, epoch, global_step, max_steps, epochs=10):
    state = types.SimpleNamespace(log_history=log, epoch=epoch, global_step=global_step, max_steps=max_steps)
    return types.SimpleNamespace(state=state, args=types.SimpleNamespace(num_train_epochs=epochs, max_steps=-1))


def test_the_teacher_stop_reason_is_read_from_its_log():
    log = [{"epoch": 1.0, "eval_accuracy": 0.5}, {"epoch": 2.0, "eval_accuracy": 0.7}, {"epoch": 3.0,
                                                                                       "eval_accuracy": 0.9}]
    budget = finetune_stop(_trainer(log, 3.0, 30, 30, epochs=3), "accuracy")
    assert budget == {"reason": "budget", "epochs": 3.0, "planned_epochs": 3, "best_epoch": 3.0,
                      "best_accuracy": 0.9}
    plateau = finetune_stop(_trainer(log[:2] + [{"epoch": 3.0, "eval_accuracy": 0.6}], 3.0, 30, 30, 3), "accuracy")
    assert plateau["reason"] == "budget-plateau" and plateau["best_epoch"] == 2.0
    early = finetune_stop(_trainer(log[:2] + [{"epoch": 3.0, "eval_accuracy": 0.6}], 3.0, 30, 100), "accuracy")
    assert early["reason"] == "early-stopping"
    assert finetune_stop(_trainer([], 1.0, 10, 10), "accuracy")["reason"] == "no-validation"


def test_the_card_says_when_the_teacher_stopped_because_its_budget_ran_out():
    def ran_out(results):
        results["teacher"]["finetune_stop"] = {"reason": "budget", "epochs": 3.0, "best_epoch": 3.0}

    text = _card(ran_out)
    assert ("**The teacher's fine-tuning stopped because its budget ran out** (3 epochs) while its\nvalidation "
            "score was still improving (best epoch 3, the last)") in text
    assert "budget ran out" not in _card(lambda r: r["teacher"].update(finetune_stop={"reason": "early-stopping"}))
    assert "budget ran out" not in _card()


def test_old_results_without_candidates_or_entropy_still_render():
    from test_results import RUN_RESULTS

    results = copy.deepcopy(RUN_RESULTS)
    assert "candidates" not in results
    text = _card()
    assert "Candidate settings" not in text and "spectral entropy" not in text
    assert os.path.basename(RESULTS_FILENAME) == "results.json"


@pytest.mark.parametrize("init, num_layers, init_layers, copied, expected", [
    ("teacher_layers", None, "uniform", [2, 4, 6], 3),  # the copied blocks, resolved by the analysis
    ("teacher_layers", None, [1, 6], [1, 6], 2),
    ("config", 4, "uniform", None, 4),                  # a fresh student of the recipe's depth
])
def test_the_candidates_read_the_student_depth_without_building_a_student(monkeypatch, init, num_layers,
                                                                          init_layers, copied, expected):
    from hf_spectralkd.pipeline import stages

    monkeypatch.setattr(stages, "build_student", lambda *a, **k: pytest.fail("a throw-away student was built"))
    student = types.SimpleNamespace(init=init, num_layers=num_layers, init_layers=init_layers, model=None)
    plan = types.SimpleNamespace(recipe=types.SimpleNamespace(student=student))
    assert stages._student_depth(plan, None, types.SimpleNamespace(init_layers=copied)) == expected


def test_the_candidates_build_a_student_only_when_nothing_says_its_depth(monkeypatch):
    from hf_spectralkd.pipeline import stages

    built = []
    monkeypatch.setattr(stages, "build_student", lambda plan, teacher, layers: built.append(layers) or "student")
    student = types.SimpleNamespace(init="config", num_layers=None, init_layers="uniform", model=None)
    task = types.SimpleNamespace(num_layers=lambda model: {"student": 5}[model])
    plan = types.SimpleNamespace(recipe=types.SimpleNamespace(student=student), task=task)
    assert stages._student_depth(plan, None, types.SimpleNamespace(init_layers=None)) == 5 and built == [None]
