"""The token-classification task of the recipe pipeline: word -> sub-word label alignment and the kd_mask, seqeval
metrics, the data checks made before any work (each naming file, line and column), and a tiny run end to end on a
few ATIS sentences (results.json metrics, the recommendation by F1, the card, the layer-intensity graph)."""

import json
import os

import numpy as np
import pytest
import yaml

from hf_spectralkd.recipes import DataSection, load_recipe
from hf_spectralkd.sampling import IGNORE_INDEX
from hf_spectralkd.tasks import get_task
from hf_spectralkd.tasks.tokens import align_labels, begin_to_inside, load_token_data, tokenize_words

ATIS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "atis"))
@pytest.fixture
def atis_data():
    """The shared ATIS data beside the checkout (CI has it): its absence is a failure, not a skipped feature."""
    if not os.path.isdir(ATIS):
        pytest.fail(f"the shared ATIS data is not at {ATIS}")


needs_atis = pytest.mark.usefixtures("atis_data")
TOKEN_METRICS = {"f1", "precision", "recall", "accuracy"}


def _jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


def _atis(split, n, start=0):
    with open(os.path.join(ATIS, f"{split}.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return rows[start:start + n]


def _section(directory, **options):
    return DataSection(source=str(directory), **options)


GOOD = [{"tokens": ["fly", "to", "boston"], "tags": ["O", "O", "B-city"]},
        {"tokens": ["from", "new", "york"], "tags": ["O", "B-city", "I-city"]}]


# ---------------------------------------------------------------------------------------------- alignment
def test_first_sub_word_carries_the_tag_and_the_kd_mask_marks_the_same_positions():
    # [CLS] w0 w0' w1 [SEP]: the second piece of word 0 gets -100 (run_ner.py), kd_mask is 1 where a tag is
    labels, mask = align_labels([None, 0, 0, 1, None], [3, 5])
    assert labels == [IGNORE_INDEX, 3, IGNORE_INDEX, 5, IGNORE_INDEX] and mask == [0, 1, 0, 1, 0]
    # an unlabelled (transfer) row: no labels, the same word-start mask
    labels, mask = align_labels([None, 0, 0, 1, None], [IGNORE_INDEX, IGNORE_INDEX])
    assert labels == [IGNORE_INDEX] * 5 and mask == [0, 1, 0, 1, 0]


def test_label_all_tokens_turns_a_b_tag_into_its_i_tag_after_the_first_piece():
    names = ["B-city", "I-city", "O", "B-date"]  # B-date has no I-date: it stays itself
    assert begin_to_inside(names) == [1, 1, 2, 3]
    labels, mask = align_labels([None, 0, 0, 1, 1, None], [0, 3], label_all_tokens=True,
                                b_to_i=begin_to_inside(names))
    assert labels == [IGNORE_INDEX, 0, 1, 3, 3, IGNORE_INDEX] and mask == [0, 1, 1, 1, 1, 0]


def test_tokenize_words_with_the_teacher_tokenizer():
    import datasets

    from hf_spectralkd.loading import packaged_minilm_path

    task = get_task("token-classification")
    tokenizer = task.load_processor(None, packaged_minilm_path())
    rows = datasets.Dataset.from_dict({"tokens": [["fly", "to", "lufthansa"]], "tags": [[2, 2, 0]]})
    encoded = tokenize_words(rows, tokenizer, max_length=32)[0]
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert len(pieces) > 5  # [CLS] fly to lu ##ft ##han ##sa [SEP]: the last word is split
    assert encoded["labels"][:4] == [IGNORE_INDEX, 2, 2, 0] and set(encoded["labels"][4:]) == {IGNORE_INDEX}
    assert encoded["kd_mask"] == [1 if label != IGNORE_INDEX else 0 for label in encoded["labels"]]
    unlabelled = tokenize_words(datasets.Dataset.from_dict({"tokens": [["fly", "to", "lufthansa"]]}), tokenizer)[0]
    assert set(unlabelled["labels"]) == {IGNORE_INDEX} and unlabelled["kd_mask"] == encoded["kd_mask"]
    short = tokenize_words(datasets.Dataset.from_dict({"tokens": [["fly"]], "tags": [[2]]}), tokenizer)[0]
    batch = task.data_collator(tokenizer)([encoded, short])
    assert batch["kd_mask"].shape == batch["labels"].shape == batch["input_ids"].shape
    assert batch["kd_mask"][1].tolist() == [0, 1, 0] + [0] * (batch["input_ids"].shape[1] - 3)


# ---------------------------------------------------------------------------------------------- metrics
def test_token_metrics_are_seqeval_entity_scores_and_token_accuracy():
    from seqeval.metrics import f1_score

    from hf_spectralkd.metrics import token_metrics

    names = ["B-city", "I-city", "O"]
    labels = np.array([[IGNORE_INDEX, 0, 1, 2, IGNORE_INDEX], [IGNORE_INDEX, 0, 2, IGNORE_INDEX, IGNORE_INDEX]])
    predicted = np.array([[0, 0, 2, 2, 0], [1, 0, 2, 0, 0]])  # row 1 cuts the entity short, row 2 is right
    logits = np.eye(3)[predicted]
    result = token_metrics(names)(type("EvalPrediction", (), {"predictions": logits, "label_ids": labels}))
    assert set(result) == TOKEN_METRICS
    # entities: (city 0-1), (city 0-0) true; (city 0-0), (city 0-0) predicted -> P 1/2, R 1/2
    assert result["precision"] == pytest.approx(0.5) and result["recall"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(f1_score([["B-city", "I-city", "O"], ["B-city", "O"]],
                                                  [["B-city", "O", "O"], ["B-city", "O"]]))
    assert result["accuracy"] == pytest.approx(4 / 5)  # the -100 positions are not counted


# ---------------------------------------------------------------------------------------------- data checks
def test_a_tag_list_of_another_length_is_named_by_file_line_and_column(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", [GOOD[0], {"tokens": ["to", "denver", "now"], "tags": ["O", "B-city"]}])
    with pytest.raises(ValueError) as info:
        load_token_data(_section(tmp_path), need_test=False)
    message = str(info.value)
    assert path in message and "line 2" in message and "column 'tags'" in message
    assert "2 tag(s) for 3 word(s)" in message


def test_an_empty_row_and_a_missing_tag_list_are_errors(tmp_path):
    _jsonl(tmp_path / "train.jsonl", [*GOOD, {"tokens": [], "tags": []}])
    with pytest.raises(ValueError, match=r"train.jsonl, line 3, column 'tokens': an empty row"):
        load_token_data(_section(tmp_path), need_test=False)
    _jsonl(tmp_path / "train.jsonl", [*GOOD, {"tokens": ["hi"], "tags": None}])
    with pytest.raises(ValueError, match=r"line 3, column 'tags': the tag list is missing"):
        load_token_data(_section(tmp_path), need_test=False)
    _jsonl(tmp_path / "train.jsonl", [{"words": ["hi"], "tags": ["O"]}])
    with pytest.raises(ValueError, match=r"column 'tokens' not found in .*train.jsonl; the columns are words, tags"):
        load_token_data(_section(tmp_path), need_test=False)


def test_a_tag_training_never_saw_is_an_error_unless_kept(tmp_path):
    _jsonl(tmp_path / "train.jsonl", GOOD)
    validation = _jsonl(tmp_path / "validation.jsonl", [GOOD[0], {"tokens": ["at", "noon"], "tags": ["O", "B-time"]}])
    _jsonl(tmp_path / "test.jsonl", GOOD)
    with pytest.raises(ValueError) as info:
        load_token_data(_section(tmp_path))
    message = str(info.value)
    assert validation in message and "line 2, column 'tags'" in message
    assert "the tag 'B-time' (word 2, 'noon') is not in the training split" in message
    assert "data.unseen_tags: keep" in message
    with pytest.warns(UserWarning, match="data.unseen_tags: keep: 1 validation/test tag"):
        splits, names, info = load_token_data(_section(tmp_path, unseen_tags="keep"))
    assert names == ["B-city", "B-time", "I-city", "O"] and info["unseen_tags"] == {"B-time": 1}
    assert splits["validation"][1]["tags"] == [3, 1]


def test_an_i_tag_without_its_b_tag_is_a_warning_naming_the_line(tmp_path):
    broken = {"tokens": ["to", "new", "york"], "tags": ["O", "I-city", "I-city"]}
    path = _jsonl(tmp_path / "train.jsonl", [*GOOD, broken])
    with pytest.warns(UserWarning) as caught:
        load_token_data(_section(tmp_path), need_test=False)
    messages = [str(w.message) for w in caught if "I- tag" in str(w.message)]
    assert len(messages) == 1
    assert f"{path}, line 3, column 'tags': 1 I- tag(s) with no B- or I- of the same type" in messages[0]
    assert "word 2, 'I-city' after 'O'" in messages[0]


def test_conll_and_csv_files(tmp_path):
    conll = tmp_path / "conll"
    conll.mkdir()
    (conll / "train.conll").write_text("-DOCSTART- O\n\nfly O\nto O\nboston B-city\n\nfrom O\nnew B-city\n"
                                       "york I-city\n", encoding="utf-8")
    (conll / "valid.txt").write_text("to O\nboston B-city\n", encoding="utf-8")  # valid.* is the validation split
    splits, names, _ = load_token_data(_section(conll), need_test=False)
    assert names == ["B-city", "I-city", "O"] and len(splits["train"]) == 2 and len(splits["validation"]) == 1
    assert splits["train"][1] == {"tokens": ["from", "new", "york"], "tags": [2, 0, 1]}
    (conll / "train.conll").write_text("fly O\nto\nboston B-city\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.conll, line 2: 'to' has no tag"):
        load_token_data(_section(conll), need_test=False)
    (conll / "train.conll").write_text("fly O\nto B-city\n\nnew O\nyork I-city\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"train.conll, line 5, the last column \(the tag\): 1 I- tag"):
        load_token_data(_section(conll), need_test=False)

    table = tmp_path / "csv"
    table.mkdir()
    (table / "train.csv").write_text('words,labels\nfly to boston,O O B-city\n"[""from"", ""york""]",O B-city\n',
                                     encoding="utf-8")
    splits, names, info = load_token_data(_section(table, tokens_column="words", tags_column="labels",
                                                   validation_fraction=0.5), need_test=False)
    rows = sorted(list(splits["train"]["tokens"]) + list(splits["validation"]["tokens"]))
    assert rows == [["fly", "to", "boston"], ["from", "york"]] and names == ["B-city", "O"]
    assert info["tokens_column"] == "words" and info["tags_column"] == "labels"


def test_recipe_fields_of_the_token_task(tmp_path):
    _jsonl(tmp_path / "train.jsonl", GOOD)
    base = {"name": "t", "task": "token-classification", "teacher": {"base": "packaged:minilm"},
            "student": {"num_layers": 2}, "data": {"source": str(tmp_path)}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(base))
    recipe = load_recipe(path)
    assert (recipe.data.tokens_column, recipe.data.tags_column, recipe.data.label_all_tokens,
            recipe.data.unseen_tags) == ("tokens", "tags", False, "error")
    with pytest.raises(ValueError, match="data.unseen_tags .* must be one of error, keep, got 'drop'"):
        load_recipe(path, ["data.unseen_tags=drop"])
    with pytest.raises(ValueError, match="data.augment .* is supported by the text-classification task only"):
        load_recipe(path, ["data.augment.n_per_example=2"])


# ---------------------------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def atis_run(tmp_path_factory):
    """A tiny BERT base (MiniLM's tokenizer) fine-tuned as teacher on 48 ATIS sentences, a 2-block student distilled
    with 16 unlabelled ATIS sentences as a transfer set, the baseline, the recommendation and the card."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hf_spectralkd.loading import packaged_minilm_path
    from hf_spectralkd.pipeline import run_pipeline

    if not os.path.isdir(ATIS):
        pytest.fail(f"the shared ATIS data is not at {ATIS}")
    root = tmp_path_factory.mktemp("atis")
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(root / "tiny_bert")
    tokenizer.save_pretrained(root / "tiny_bert")
    data = root / "data"
    data.mkdir()
    _jsonl(data / "train.jsonl", _atis("train", 48))
    _jsonl(data / "validation.jsonl", _atis("validation", 12))
    _jsonl(data / "test.jsonl", _atis("test", 12))
    _jsonl(root / "transfer.jsonl", [{"tokens": row["tokens"]} for row in _atis("train", 16, start=100)])
    recipe = {
        "name": "tiny_atis", "task": "token-classification",
        "teacher": {"base": "../tiny_bert", "finetune": {"epochs": 2, "batch_size": 16, "learning_rate": "1e-3"}},
        "student": {"init": "teacher_layers", "num_layers": 2, "init_layers": "uniform"},
        "data": {"source": "../data", "max_length": 48, "name": "atis-tiny", "unseen_tags": "keep",
                 "transfer": {"source": "../transfer.jsonl"}},
        "distillation": {"beta": 0.2, "layer_selection": "topk", "selection_samples": 16, "dynamics_samples": 8},
        "training": {"max_steps": 4, "per_device_train_batch_size": 16, "learning_rate": "1e-3", "logging_steps": 2,
                     "disable_tqdm": True},
        "evaluation": {"split": "test", "baseline": True},
        "output": {"dir": str(root / "run")},
    }
    (root / "recipes").mkdir()
    path = root / "recipes" / "tiny_atis.yaml"
    path.write_text(yaml.safe_dump(recipe))
    lines = []
    with pytest.warns(UserWarning, match="unseen_tags: keep"):
        results = run_pipeline(load_recipe(path), log=lines.append)
    return {"root": root, "recipe": str(path), "out": root / "run", "results": results, "lines": lines}


@needs_atis
def test_the_token_pipeline_reports_seqeval_metrics_for_every_model(atis_run):
    out = atis_run["out"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "token-classification"
    for role in ("teacher", "student", "baseline"):
        assert set(saved[role]["metrics"]) == TOKEN_METRICS, role
        assert all(0.0 <= v <= 1.0 for v in saved[role]["metrics"].values())
        assert json.loads((out / "evaluation" / f"{role}.json").read_text())["metrics"] == saved[role]["metrics"]
    assert saved["dataset"]["labelled_train_rows"] == 48 and saved["dataset"]["transfer_rows"] == 16
    assert saved["dataset"]["splits"] == {"train": 64, "validation": 12, "test": 12}
    assert saved["versions"]["seqeval"]
    # the recommendation is made by validation F1
    recommended = saved["recommended"]
    assert recommended["metric"] == "f1" and recommended["split"] == "validation"
    student_val = json.loads((out / "evaluation" / "student_validation.json").read_text())
    assert recommended["student_f1"] == student_val["metrics"]["f1"]
    assert recommended["reason"].startswith("on the validation split it scored F1 ")
    # the teacher's best epoch was chosen by validation F1
    teacher_args = json.loads((out / "teacher" / "fingerprint.json").read_text())["inputs"]["finetune"]
    assert teacher_args["select_best"] is True
    summary = (out / "summary.md").read_text()
    assert "| model | layers | parameters | F1 % | precision % | recall % | accuracy % | samples/s |" in summary
    assert any("best epoch by validation F1" in line for line in atis_run["lines"])
    # token classifiers with the training tag set (plus the kept unseen ones)
    from transformers import AutoConfig

    names = saved["dataset"]["label_names"]
    for role in ("teacher", "student", "baseline"):
        config = AutoConfig.from_pretrained(out / role)
        assert config.architectures == ["BertForTokenClassification"]
        assert [config.id2label[i] for i in range(len(names))] == names
    assert AutoConfig.from_pretrained(out / "student").num_hidden_layers == 2


@needs_atis
def test_the_token_card_and_the_layer_intensity_graph(atis_run):
    from huggingface_hub import ModelCard

    from hf_spectralkd.cards import validate_model_card

    out, results = atis_run["out"], atis_run["results"]
    for graph in ("analysis/layer_intensity.png", "student/layer_intensity.png"):
        assert (out / graph).stat().st_size > 0
    card_path = out / "student" / "README.md"
    meta = validate_model_card(str(card_path))
    assert meta["pipeline_tag"] == "token-classification" and meta["library_name"] == "transformers"
    result = meta["model-index"][0]["results"][0]
    assert result["task"] == {"type": "token-classification", "name": "Token Classification"}
    f1 = next(m for m in result["metrics"] if m["type"] == "f1")
    assert f1["value"] == pytest.approx(round(results["student"]["metrics"]["f1"], 6))
    assert f1["name"] == "Entity F1 (test)"
    text = ModelCard.load(card_path).text
    assert "| model | Entity F1 | Entity precision | Entity recall | Token accuracy |" in text
    assert 'pipeline("token-classification"' in text and "seqeval" in text
    assert "entity F1 vs" in text  # the model choice names the metric it was made by


@needs_atis
def test_dry_run_of_a_token_recipe_writes_nothing(atis_run, tmp_path, capsys):
    from hf_spectralkd.cli import main

    out = tmp_path / "dry"
    assert main(["distill", "--config", atis_run["recipe"], "--dry-run", f"output.dir={out}"]) in (0, None)
    assert not out.exists()
    assert "token-classification" in capsys.readouterr().out


@needs_atis
def test_the_atis_recipe_validates_and_fine_tunes_by_f1():
    from hf_spectralkd.pipeline import preflight

    recipe = load_recipe(os.path.join(os.path.dirname(__file__), "..", "recipes", "atis_slots_minilm.yaml"),
                         ["output.dir=/nonexistent/atis-dry"], smoke_run=True)
    assert recipe.task == "token-classification" and recipe.data.source == ATIS
    with pytest.warns(UserWarning, match="unseen_tags"):
        plan = preflight(recipe)
    assert plan.teacher_args.metric_for_best_model == "f1" and plan.task.primary_metric == "f1"
    assert "O" in plan.label_names and plan.data.info["splits"] == {"train": 256, "validation": 128, "test": 128}


@needs_atis
def test_a_per_token_teacher_cache_in_the_token_pipeline(atis_run):
    """teacher.cache: true re-runs only the student (teacher, analysis and baseline are reused): the teacher's
    per-token logits and aligned hidden states are read from <out>/teacher_cache (the transfer rows included)."""
    from hf_spectralkd.pipeline import run_pipeline

    lines = []
    with pytest.warns(UserWarning, match="unseen_tags: keep"):
        results = run_pipeline(load_recipe(atis_run["recipe"], ["teacher.cache=true"]), log=lines.append)
    assert set(results["reused_stages"]) == {"teacher", "analysis", "baseline"}
    assert any("teacher cache:" in line and "64 examples" in line for line in lines)
    assert set(results["student"]["metrics"]) == TOKEN_METRICS
    assert (atis_run["out"] / "teacher_cache").is_dir()


@needs_atis
def test_evaluate_command_scores_a_token_student_with_seqeval(atis_run, tmp_path, capsys):
    from hf_spectralkd.cli import main

    out = tmp_path / "eval.json"
    student = str(atis_run["out"] / "student")
    code = main(["evaluate", "--task", "token-classification", "--model", student, "--data",
                 str(atis_run["root"] / "data"), "--split", "test", "--output", str(out)])
    assert code in (0, None)
    printed = capsys.readouterr().out
    assert "F1" in printed and "12 examples" in printed
    written = json.loads(out.read_text())
    run_metrics = atis_run["results"]["student"]["metrics"]
    assert set(written["metrics"]) == {"f1", "precision", "recall", "accuracy"}
    for key in written["metrics"]:  # the same model on the same split: the pipeline's own numbers
        assert written["metrics"][key] == pytest.approx(run_metrics[key], abs=1e-6), key
