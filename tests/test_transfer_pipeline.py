"""Transfer sets and augmentation in recipes: labels_per_class, data.transfer (a file, or the left-out training
texts), data.augment; the teacher and the no-KD baseline train on the labelled rows only (the baseline for the
student's number of steps); the teacher is chosen by validation; warnings when KD cannot help."""

import json
import os

import pytest
import yaml
from test_pipeline import _subset, _write_jsonl

from hf_spectralkd.augment import AugmentConfig
from hf_spectralkd.recipes import load_recipe
from hf_spectralkd.tasks import get_task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hf_spectralkd.loading import packaged_minilm_path

    root = tmp_path_factory.mktemp("transfer")
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(root / "tiny_bert")
    tokenizer.save_pretrained(root / "tiny_bert")
    data = root / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", _subset("train", 20))  # 3 intents x 20
    _write_jsonl(data / "validation.jsonl", _subset("validation", 6))
    _write_jsonl(data / "test.jsonl", _subset("test", 8))
    unlabelled = [{"utterance": f"what is the weather like in city number {i}"} for i in range(7)]
    _write_jsonl(root / "unlabelled.jsonl", unlabelled)
    return root


def recipe_file(root, name, data_extra, teacher_extra=None, training_extra=None):
    recipe = {
        "name": name,
        "teacher": {"base": "tiny_bert", "finetune": {"epochs": 3, "batch_size": 16, "learning_rate": "1e-3",
                                                      **(teacher_extra or {})}},
        "student": {"init": "teacher_layers", "num_layers": 2, "init_layers": "uniform"},
        "data": {"source": "data", "max_length": 24, "name": "clinc150-3", **data_extra},
        "distillation": {"beta": 0.2, "selection_samples": 16, "dynamics_samples": 8},
        "training": {"num_train_epochs": 1, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 32,
                     "learning_rate": "1e-3", "logging_steps": 1, "disable_tqdm": True, **(training_extra or {})},
        "evaluation": {"split": "test", "baseline": True},
        "output": {"dir": str(root / f"run_{name}")},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def test_labels_per_class_and_left_out_texts_as_transfer(tiny):
    recipe = load_recipe(recipe_file(tiny, "lowlabel", {"labels_per_class": 4, "transfer": {"source": "train"}}))
    data = get_task("text-classification").load_data(recipe)
    train = data.splits["train"]
    labels = train["label"]
    assert len(train) == 60 and sum(1 for label in labels if label != -100) == 12  # 4 per intent kept
    assert sorted(label for label in labels if label != -100) == [0] * 4 + [1] * 4 + [2] * 4
    assert data.info["labelled_train_rows"] == 12 and data.info["transfer_rows"] == 48
    # every training text is used once: 12 labelled + the 48 left out as unlabelled
    with open(tiny / "data" / "train.jsonl", encoding="utf-8") as handle:
        texts = sorted(json.loads(line)["text"] for line in handle)
    assert sorted(train["text"]) == texts
    # seeded: the same rows again, other rows with another seed
    again = get_task("text-classification").load_data(recipe).splits["train"]
    assert again["text"] == train["text"]


def test_a_transfer_file_with_its_own_column_and_a_cap(tiny):
    extra = {"transfer": {"source": "unlabelled.jsonl", "text_column": "utterance", "max_samples": 5}}
    recipe = load_recipe(recipe_file(tiny, "file", extra))
    train = get_task("text-classification").load_data(recipe).splits["train"]
    unlabelled = [t for t, label in zip(train["text"], train["label"], strict=True) if label == -100]
    assert len(train) == 65 and len(unlabelled) == 5
    assert all(t.startswith("what is the weather like in city number") for t in unlabelled)


@pytest.mark.parametrize(
    "data_extra, message",
    [
        ({"transfer": {"source": "train"}}, "means the training texts that data.labels_per_class leaves out"),
        ({"labels_per_class": 0}, r"data.labels_per_class .* must be >= 1"),
        ({"transfer": {"source": "unlabelled.jsonl"}}, r"data.transfer.text_column 'text' not found"),
        ({"augment": {"mask_prob": 2}}, r"augment.mask_prob must be a probability"),
    ],
)
def test_transfer_mistakes_are_clear_errors_before_any_work(tiny, data_extra, message):
    with pytest.raises(ValueError, match=message):
        recipe = load_recipe(recipe_file(tiny, "bad", data_extra))
        get_task("text-classification").load_data(recipe)
    assert not os.path.exists(tiny / "run_bad")


def test_augmented_rows_use_the_tokenizer_mask_token(tiny):
    augment = {"n_per_example": 2, "mask_prob": 0.5, "ngram_prob": 0}
    recipe = load_recipe(recipe_file(tiny, "aug", {"augment": augment}))
    task = get_task("text-classification")
    data = task.load_data(recipe)
    processor = task.load_processor(recipe, str(tiny / "tiny_bert"))
    prepared = task.prepare_datasets(recipe, data, processor)
    labels = prepared["train"]["labels"]
    n_aug = sum(1 for label in labels if label == -100)
    assert data.info["augmented_rows"] == n_aug and 60 < len(labels) <= 180 and n_aug > 60
    assert recipe.data.augment == AugmentConfig(n_per_example=2, mask_prob=0.5, ngram_prob=0.0)
    mask_id = processor.mask_token_id
    augmented = [ids for ids, label in zip(prepared["train"]["input_ids"], labels, strict=True) if label == -100]
    assert sum(mask_id in ids for ids in augmented) > len(augmented) / 2


def test_lowlabel_run_end_to_end(tiny):
    from hf_spectralkd.pipeline import run_pipeline

    path = recipe_file(tiny, "e2e", {"labels_per_class": 4, "transfer": {"source": "train"}},
                       teacher_extra={"select_best": True, "patience": 1}, training_extra={"num_train_epochs": 2})
    recipe = load_recipe(path, overrides=[("teacher.cache", True)])
    logs = []
    results = run_pipeline(recipe, log=logs.append)
    out = tiny / "run_e2e"
    # the teacher evaluated every epoch on validation and kept the best (its log has an eval per epoch)
    teacher_line = next(line for line in logs if line.startswith("[1/6 teacher]"))
    assert "on 12 labelled examples" in teacher_line and "best epoch by validation accuracy" in teacher_line
    # the student trained on all 60 rows for 2 epochs of 8: 16 steps; the baseline on the 12 labelled rows, 16 steps
    student_log = json.load(open(out / "student" / "training_log.json"))
    baseline_log = json.load(open(out / "baseline" / "training_log.json"))
    assert student_log[-1]["step"] == 16 and baseline_log[-1]["step"] == 16
    assert results["dataset"]["labelled_train_rows"] == 12 and results["dataset"]["transfer_rows"] == 48
    assert json.load(open(out / "teacher_cache" / "cache_meta.json"))["num_examples"] == 60
    assert isinstance(results["warnings"], list)
    assert json.load(open(out / "results.json"))["warnings"] == results["warnings"]


def test_a_narrow_student_from_scratch_end_to_end(tiny):
    """student.init: config — fewer, narrower blocks than the teacher (the teacher's tokenizer and vocabulary); the
    alignment term pools the teacher's wider hidden states down to the student's width."""
    from hf_spectralkd.pipeline import run_pipeline

    path = recipe_file(tiny, "narrow", {}, training_extra={"max_steps": 4})
    recipe = load_recipe(path, overrides=[
        ("student", {"init": "config", "num_layers": 2,
                     "config": {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32}}),
        ("teacher.finetune.max_steps", 2)])
    results = run_pipeline(recipe, log=lambda line: None)
    student = json.load(open(tiny / "run_narrow" / "student" / "config.json"))
    assert (student["hidden_size"], student["num_hidden_layers"], student["vocab_size"]) == (16, 2, 30522)
    assert results["student"]["hidden_size"] == 16 and results["teacher"]["hidden_size"] == 32
    assert len(results["layer_map"]["student_layers"]) == 2
    log = json.load(open(tiny / "run_narrow" / "student" / "training_log.json"))
    freq = [entry["freq_loss"] for entry in log if "freq_loss" in entry and "eval_loss" not in entry]
    assert freq and all(value > 0 for value in freq)
