"""Model cards and Hub pushes of distilled students, offline.

A tiny BERT student is distilled for a few steps with SpectralDistillationTrainer; its real layer map and
metrics go into a results dict, and the rendered card is checked against those values. The Hub API is
replaced by a recording fake (``create_repo`` / ``create_branch`` / ``upload_folder``), or by one that raises.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import shutil

import pytest
import torch
from conftest import NUM_LABELS, make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from sklearn.metrics import accuracy_score, f1_score

from hf_spectralkd import SpectralDistillationTrainer
from hf_spectralkd.cards import END_MARKER, START_MARKER, validate_model_card, write_model_card
from hf_spectralkd.cli import main as cli_main
from hf_spectralkd.hub import HubPushError, push_student
from hf_spectralkd.paper import PAPER

REPO = "someone/tiny-spectralkd"


# --------------------------------------------------------------------------------------------- a finished run
def _evaluate(model, rows):
    model.eval()
    with torch.no_grad():
        batch = pad_collate(rows)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    predictions = logits.argmax(-1).numpy()
    labels = batch["labels"].numpy()
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
    }


def _describe(model, path, source):
    return {
        "source": source,
        "path": path,
        "num_layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """run/ with student/ (distilled 3 steps), teacher/, results.json; returns (run_dir, results, trainer)."""
    from transformers import Trainer

    run = tmp_path_factory.mktemp("run")
    train_rows, test_rows = make_token_rows(64, seed=0), make_token_rows(24, seed=5)
    teacher, student = tiny_bert(num_layers=4, hidden=32, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)
    teacher.save_pretrained(run / "teacher")
    args = small_config(run, output_dir=str(run / "student"), max_steps=3, spectral_dynamics=False, learning_rate=5e-3)
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        data_collator=pad_collate,
    )
    trainer.train()
    trainer.save_model()
    baseline = tiny_bert(num_layers=2, hidden=16, seed=1)
    Trainer(
        model=baseline,
        args=small_config(run, output_dir=str(run / "baseline"), max_steps=3, learning_rate=5e-3),
        train_dataset=Dataset.from_list(train_rows),
        data_collator=pad_collate,
    ).train()
    layer_map = trainer.layer_map
    results = {
        "recipe": "recipes/tiny.yaml",
        "recipe_name": "tiny_run",
        "task": "text-classification",
        "eval_split": "test",
        "dataset": {
            "name": "tiny-tokens",
            "source": str(run / "data"),
            "num_labels": NUM_LABELS,
            "splits": {"train": len(train_rows), "test": len(test_rows)},
            "license": "cc-by-4.0",
            "citation": "@misc{tinytokens2026,\n  title = {Tiny tokens}\n}",
        },
        "teacher": {
            **_describe(teacher, str(run / "teacher"), str(run / "teacher")),
            "metrics": _evaluate(teacher, test_rows),
            "throughput_samples_per_s": 100.0,
        },
        "student": {
            **_describe(student, str(run / "student"), str(run / "teacher")),
            "metrics": _evaluate(student, test_rows),
            "throughput_samples_per_s": 250.0,
            "init": "config",
            "init_layers": None,
        },
        "baseline": {
            **_describe(baseline, str(run / "baseline"), str(run / "teacher")),
            "metrics": _evaluate(baseline, test_rows),
            "throughput_samples_per_s": 250.0,
            "init": "config",
            "init_layers": None,
        },
        "layer_map": {
            "teacher_layers": layer_map.teacher_layers,
            "student_layers": layer_map.student_layers,
            "strategy": layer_map.strategy,
            "teacher_intensity": layer_map.teacher_intensity,
        },
        "distillation": {
            k: getattr(args, k)
            for k in ("alpha", "temperature", "beta", "fft_axis", "freq_loss_variant", "layer_selection")
        },
        "training": {
            "learning_rate": args.learning_rate,
            "max_steps": args.max_steps,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "seed": args.seed,
        },
        "timings_s": {"distill": 1.5, "total": 3.0},
        "versions": {"hf_spectralkd": "0.1.0", "torch": torch.__version__},
        "output_dir": str(run),
    }
    with open(run / "results.json", "w") as handle:
        json.dump(results, handle)
    return run, results, trainer


def _digest(directory):
    return {
        name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
        for name in sorted(os.listdir(directory))
        if os.path.isfile(os.path.join(directory, name))
    }


# --------------------------------------------------------------------------------------------- card contents
def test_card_has_metadata_and_every_section_with_the_runs_values(finished_run):
    run, results, trainer = finished_run
    path = write_model_card(run / "student", results)
    assert path == os.path.join(run / "student", "README.md")
    text = open(path, encoding="utf-8").read()

    meta = validate_model_card(path)  # the offline stand-in for ModelCard.validate (see cards.validate_model_card)
    card = ModelCard.load(path)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert {"hf_spectralkd", "distillation", "spectralkd"} <= set(card.data.tags)
    assert card.data.license is None  # a teacher built from a config has no licence to inherit
    assert "base_model" not in meta  # the teacher is a local directory, not a Hub id ...
    assert f"`{run / 'teacher'}` (local)" in text  # ... so the body names it
    name, evals = model_index_to_eval_results(meta["model-index"])
    assert name == "tiny_run-spectralkd-student"
    by_type = {e.metric_type: e for e in evals}
    assert by_type["accuracy"].metric_value == pytest.approx(results["student"]["metrics"]["accuracy"], abs=1e-6)
    assert by_type["f1"].metric_value == pytest.approx(results["student"]["metrics"]["macro_f1"], abs=1e-6)
    assert by_type["f1"].metric_args == {"average": "macro"}
    assert {e.dataset_split for e in evals} == {"test"} and {e.task_type for e in evals} == {"text-classification"}

    for heading in (
        "## Teacher and student",
        "## Layer map",
        "## Distillation hyper-parameters",
        "## Results",
        "## How to use",
        "## Training procedure",
        "## Framework versions",
        "## Citation",
    ):
        assert heading in text, heading
    # sizes and speed-up (250 / 100 samples/s)
    t, s = results["teacher"], results["student"]
    assert f"| teacher | `{run / 'teacher'}` (local) | 4 | 32 | {t['num_parameters']:,} | 100.0 |" in text
    assert f"| SpectralKD student | this model | 2 | 16 | {s['num_parameters']:,} | 250.0 |" in text
    assert "**Speed-up: 2.50x**" in text
    assert f"{t['num_parameters'] / s['num_parameters']:.2f}x fewer parameters" in text
    # the layer map the trainer actually chose, with the teacher's measured intensities
    layer_map = trainer.layer_map
    assert len(layer_map.teacher_layers) == 2
    for s_layer, t_layer in layer_map.pairs:
        assert f"| {s_layer} | {t_layer} | {layer_map.teacher_intensity[t_layer]:.5f} |" in text
    assert "![Layer intensity of the teacher (selected layers highlighted)](layer_intensity.png)" in text
    assert os.path.isfile(run / "student" / "layer_intensity.png")
    # hyper-parameters
    assert "| `alpha` | 0.9 |" in text and "| `beta` | 0.2 |" in text and "| `temperature` | 1 |" in text
    # results table: the three models on the same split
    assert "Measured on the **test** split of tiny-tokens (24 examples)" in text
    for label, role in (
        ("Teacher", "teacher"),
        ("Student without KD", "baseline"),
        ("**SpectralKD student (this model)**", "student"),
    ):
        m = results[role]["metrics"]
        row = next(line for line in text.splitlines() if line.startswith(f"| {label}"))
        assert row.endswith(f"| {m['accuracy']:.4f} | {m['macro_f1']:.4f} |"), row
    # usage, training procedure, versions, citations
    assert f'pipeline("text-classification", model="{run / "student"}")' in text
    assert "| `learning_rate` | 0.005 |" in text and "| `max_steps` | 3 |" in text and "| distill | 1.5 |" in text
    assert f"- torch {torch.__version__}" in text
    assert PAPER["citation"] in text and "arXiv [2412.19055]" in text
    assert results["dataset"]["citation"] in text


def test_usage_snippet_names_the_repo_or_the_local_path(finished_run, tmp_path):
    run, results, _ = finished_run
    student = tmp_path / "student"
    shutil.copytree(run / "student", student)
    text = open(write_model_card(student, results, repo_id=REPO, overwrite=True)).read()
    assert f'pipeline("text-classification", model="{REPO}")' in text
    assert "# tiny-spectralkd" in text
    text = open(write_model_card(student, results, usage_path="runs/tiny/student", overwrite=True)).read()
    assert 'pipeline("text-classification", model="runs/tiny/student")' in text


def test_hub_teacher_becomes_base_model_and_vision_cards_use_timm(finished_run, tmp_path):
    _, results, _ = finished_run
    hub = json.loads(json.dumps(results))
    hub["teacher"]["source"] = "FacebookAI/roberta-large"
    hub["dataset"]["hub_id"] = "clinc/clinc_oos"
    (tmp_path / "a").mkdir()
    meta = validate_model_card(write_model_card(tmp_path / "a", hub))
    assert meta["base_model"] == "FacebookAI/roberta-large" and meta["datasets"] == ["clinc/clinc_oos"]
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "clinc/clinc_oos"

    # the licence is inherited from the teacher's card: a local README, or the packaged MiniLM's
    licensed = json.loads(json.dumps(results))
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "README.md").write_text("---\nlicense: mit\n---\n# teacher\n")
    licensed["teacher"]["path"] = str(tmp_path / "teacher")
    assert validate_model_card(write_model_card(tmp_path / "a", licensed, overwrite=True))["license"] == "mit"
    licensed["teacher"].update(source="packaged:minilm", path=None)
    meta = validate_model_card(write_model_card(tmp_path / "a", licensed, overwrite=True))
    # the packaged MiniLM is a copy of a Hub model: base_model links the model tree
    assert meta["license"] == "apache-2.0" and meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    text = open(tmp_path / "a" / "README.md", encoding="utf-8").read()
    assert "(the packaged copy `packaged:minilm`)" in text and "is not a Hub model" not in text

    vision = json.loads(json.dumps(results))
    vision["task"] = "image-classification"
    vision["teacher"]["source"] = "vit_tiny_patch16_224"  # a timm architecture name is not a Hub repo
    (tmp_path / "v").mkdir()
    path = write_model_card(tmp_path / "v", vision, repo_id="someone/digits-vit-student")
    meta, text = validate_model_card(path), open(path).read()
    assert meta["library_name"] == "timm" and meta["pipeline_tag"] == "image-classification"
    assert 'timm.create_model("hf-hub:someone/digits-vit-student", pretrained=True)' in text
    assert "base_model" not in meta and "timm `vit_tiny_patch16_224`" in text
    assert "pipeline(" not in text


def test_existing_readme_keeps_user_text_and_metadata(finished_run, tmp_path):
    _, results, _ = finished_run
    directory = tmp_path / "student"
    directory.mkdir()
    user = "---\nlicense: mit\nlanguage: en\ntags:\n- my-tag\n---\n\n# My notes\n\nHand-written intro.\n"
    (directory / "README.md").write_text(user)
    write_model_card(directory, results)
    first = (directory / "README.md").read_text()
    (directory / "README.md").write_text(first + "\nA footer the user added later.\n")
    write_model_card(directory, results)  # regenerate: only the generated block changes
    text = (directory / "README.md").read_text()
    meta = validate_model_card(text)
    assert meta["license"] == "mit" and meta["language"] == "en"
    assert meta["tags"][0] == "my-tag" and "spectralkd" in meta["tags"]
    assert text.count(START_MARKER) == 1 and text.count(END_MARKER) == 1
    assert (
        text.index("Hand-written intro.") < text.index(START_MARKER) < text.index(END_MARKER) < text.index("A footer")
    )
    # the draft transformers.Trainer writes is not user text: it is replaced
    (directory / "README.md").write_text(
        "---\nlicense: other\n---\n<!-- This model card has been generated automatically according to the information "
        "the Trainer had access to. You should probably proofread and complete it, then remove this comment. -->"
        "\n# out\n"
    )
    text = open(write_model_card(directory, results)).read()
    assert "generated automatically" not in text and text.count(START_MARKER) == 1
    # overwrite=True drops the user's text
    (directory / "README.md").write_text(first)
    text = open(write_model_card(directory, results, overwrite=True)).read()
    assert "Hand-written intro." not in text and "A footer" not in text


def test_card_command_writes_the_student_card_and_copies_it(finished_run, tmp_path, capsys):
    run, results, _ = finished_run
    out = tmp_path / "model_cards" / "tiny_run"
    assert cli_main(["card", "--run-dir", str(run), "--output-dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["README.md", "layer_intensity.png"]
    assert (out / "README.md").read_text() == (run / "student" / "README.md").read_text()
    assert (out / "layer_intensity.png").read_bytes() == (run / "student" / "layer_intensity.png").read_bytes()
    validate_model_card(out / "README.md")
    (tmp_path / "lonely").mkdir()
    assert cli_main(["card", "--run-dir", str(tmp_path / "lonely")]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_invalid_model_index_is_rejected_by_the_validation():
    with pytest.raises(ValueError, match="model-index|model_index"):
        validate_model_card("---\nmodel-index:\n- name: x\n  results:\n  - dataset: {name: d}\n---\n")
    with pytest.raises(ValueError, match="base_model"):
        validate_model_card("---\nbase_model: not a/valid/id\n---\n")


# --------------------------------------------------------------------------------------------- push
class FakeHfApi:
    """Records the Hub calls; checks the folder's files while upload_folder runs."""

    def __init__(self, *args, fail=None, **kwargs):
        self.calls, self.fail = [], fail

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, "private": private, "exist_ok": exist_ok}))
        if self.fail:
            raise self.fail
        from huggingface_hub import RepoUrl

        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, branch, token=None, exist_ok=False, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, "branch": branch}))

    def upload_folder(self, *, repo_id, folder_path, commit_message=None, run_as_future=False, **kwargs):
        files = sorted(os.listdir(folder_path))
        card = open(os.path.join(folder_path, "README.md")).read() if "README.md" in files else None
        self.calls.append(
            (
                "upload_folder",
                {
                    "repo_id": repo_id,
                    "folder_path": str(folder_path),
                    "files": files,
                    "card": card,
                    "commit_message": commit_message,
                    **kwargs,
                },
            )
        )
        info = type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/0"})()
        if run_as_future:
            future = concurrent.futures.Future()
            future.set_result(info)
            return future
        return info


def _http_error(status):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(
        f"{status} Client Error: Forbidden for url {request.url}", response=httpx2.Response(status, request=request)
    )


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # read once, when huggingface_hub loads
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    api = FakeHfApi()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda *a, **k: api)
    return api


def test_cli_push_uploads_the_student_folder_with_card_and_graph(finished_run, online, capsys):
    run, results, _ = finished_run
    code = cli_main(
        [
            "push",
            "--model-dir",
            str(run),
            "--repo-id",
            REPO,
            "--private",
            "--revision",
            "v1",
            "--commit-message",
            "first distilled student",
        ]
    )
    assert code == 0, capsys.readouterr().err
    names = [name for name, _ in online.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert online.calls[0][1] == {"repo_id": REPO, "private": True, "exist_ok": True}
    upload = online.calls[2][1]
    assert upload["folder_path"] == str(run / "student") and upload["revision"] == "v1"
    assert upload["commit_message"] == "first distilled student"
    assert {"README.md", "model.safetensors", "config.json", "layer_intensity.png", "layer_map.json"} <= set(
        upload["files"]
    )
    assert f'model="{REPO}"' in upload["card"] and "# tiny-spectralkd" in upload["card"]
    assert "checkpoint-*" in upload["ignore_patterns"]
    assert f"pushed {run} to {REPO}" in capsys.readouterr().out


def test_push_default_commit_message_names_the_teacher(finished_run, online):
    run, results, _ = finished_run
    push_student(run / "student", REPO)  # a student dir: results.json is read from its parent
    upload = dict(online.calls)["upload_folder"]
    assert upload["commit_message"] == f"Upload SpectralKD student distilled from {results['teacher']['source']}"


@pytest.mark.parametrize("failure", ["offline", "no_token", "rejected"])
def test_failed_push_gives_one_clear_message_and_keeps_files(finished_run, monkeypatch, capsys, failure):
    run, results, _ = finished_run
    if failure == "rejected":  # the upload itself fails: the card for REPO was written first and is kept
        write_model_card(run / "student", results, repo_id=REPO)
    before = _digest(run / "student")  # offline / no token: the push stops before it touches any file
    api = FakeHfApi(fail=_http_error(403) if failure == "rejected" else None)
    monkeypatch.setattr("huggingface_hub.HfApi", lambda *a, **k: api)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if failure == "offline" else "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", failure == "offline")
    if failure == "no_token":
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    else:
        monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    code = cli_main(["push", "--model-dir", str(run), "--repo-id", REPO])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("hf-spectralkd push: error: push to the Hub failed")
    assert f"hf-spectralkd push --model-dir {run / 'student'} --repo-id {REPO}" in err
    expected = {"offline": "HF_HUB_OFFLINE=1", "no_token": "no Hugging Face token", "rejected": "HTTP 403"}[failure]
    assert expected in err
    assert [n for n, _ in api.calls] == ([] if failure != "rejected" else ["create_repo"])
    assert _digest(run / "student") == before  # model and card intact


def test_push_rejects_bad_input_before_any_work(finished_run, tmp_path, online):
    run, _, _ = finished_run
    with pytest.raises(ValueError, match="not a valid Hub repo id"):
        push_student(run, "not a repo id!")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no model weights"):
        push_student(tmp_path / "empty", REPO)
    assert online.calls == []


# --------------------------------------------------------------------------------------------- trainer.push_to_hub
def _accuracy(prediction):
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def _trainer(tmp_path, **overrides):
    args = small_config(tmp_path, spectral_dynamics=False, hub_model_id=REPO, **overrides)
    return SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=args,
        train_dataset=Dataset.from_list(make_token_rows(48, seed=0)),
        eval_dataset=Dataset.from_list(make_token_rows(16, seed=3)),
        data_collator=pad_collate,
        compute_metrics=_accuracy,
    )


def test_trainer_checkpoint_pushes_and_push_to_hub_upload_output_dir_with_this_card(tmp_path, monkeypatch):
    api = FakeHfApi()
    monkeypatch.setattr("transformers.trainer.hf_api", lambda: api)
    # the Hub is faked, not offline (push_to_hub=True offline is refused at construction)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    trainer = _trainer(
        tmp_path,
        push_to_hub=True,
        save_strategy="steps",
        save_steps=2,
        hub_strategy="every_save",
        eval_strategy="steps",
        eval_steps=2,
        max_steps=4,
    )
    trainer.train()
    # checkpoint pushes (every_save) regenerate the card: each upload holds a card whose log table has that step
    uploads = [c for n, c in api.calls if n == "upload_folder"]
    assert [u["commit_message"] for u in uploads][:2] == [
        "Training in progress, step 2",
        "Training in progress, step 4",
    ]
    evals = [e for e in trainer.state.log_history if "eval_accuracy" in e]
    assert [e["step"] for e in evals] == [2, 4]
    assert START_MARKER in uploads[0]["card"] and "\n| 2 | 0.33 |" in uploads[0]["card"]
    assert "\n| 4 | 0.67 |" not in uploads[0]["card"] and "\n| 4 | 0.67 |" in uploads[1]["card"]

    api.calls.clear()
    trainer.push_to_hub()
    assert [n for n, _ in api.calls] == ["upload_folder"]  # the repo was created when training started
    upload = api.calls[-1][1]
    assert upload["folder_path"] == trainer.args.output_dir and upload["commit_message"] == "End of training"
    assert {"README.md", "model.safetensors", "layer_intensity.png", "layer_map.json"} <= set(upload["files"])
    card = upload["card"]
    assert START_MARKER in card and f'model="{REPO}"' in card and "![Layer intensity" in card
    for s_layer, t_layer in trainer.layer_map.pairs:
        assert f"| {s_layer} | {t_layer} | {trainer.layer_map.teacher_intensity[t_layer]:.5f} |" in card
    meta = validate_model_card(card)
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "tiny-spectralkd"
    assert results[0].metric_type == "accuracy" and results[0].metric_value == pytest.approx(
        evals[-1]["eval_accuracy"]
    )
    assert results[0].dataset_split == "validation"
    assert {"hf_spectralkd", "distillation", "spectralkd"} <= set(meta["tags"])


def test_trainer_push_failure_says_how_to_retry_and_saves_model_and_card(tmp_path, monkeypatch):
    api = FakeHfApi(fail=_http_error(401))
    monkeypatch.setattr("transformers.trainer.hf_api", lambda: api)
    trainer = _trainer(tmp_path)
    retry = f"hf-spectralkd push --model-dir {trainer.args.output_dir} --repo-id {REPO}"
    with pytest.raises(HubPushError, match=re.escape(retry)) as failure:
        trainer.push_to_hub()
    assert "HTTP 401" in str(failure.value)
    assert {"README.md", "model.safetensors", "config.json"} <= set(os.listdir(trainer.args.output_dir))


def test_push_of_a_trainer_output_dir_builds_the_card_from_the_saved_state(tmp_path, online):
    """A script's trainer.save_model() folder (no README, no results.json) pushes with a generated card."""
    from conftest import make_token_rows, pad_collate, small_config, tiny_bert
    from datasets import Dataset

    from hf_spectralkd import SpectralDistillationTrainer
    from hf_spectralkd.constants import TRAINER_RESULTS_FILENAME

    trainer = SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=tiny_bert(num_layers=4, seed=0),
        args=small_config(tmp_path, max_steps=2, spectral_dynamics=False),
        train_dataset=Dataset.from_list(make_token_rows(16)), data_collator=pad_collate,
    )
    trainer.train()
    trainer.save_model()
    out = tmp_path / "out"
    assert (out / TRAINER_RESULTS_FILENAME).is_file() and not (out / "README.md").exists()
    assert cli_main(["push", "--model-dir", str(out), "--repo-id", "someone/tiny-student"]) == 0
    upload = [call for name, call in online.calls if name == "upload_folder"][0]
    assert "README.md" in upload["files"] and "model.safetensors" in upload["files"]
    card = upload["card"]
    assert "someone/tiny-student" in card or "tiny-student" in card
    assert "no evaluation data (no eval_dataset)" in card and "the Trainer's eval_dataset" not in card
