"""examples/run_ner_distillation.py (the run_ner.py shape) distils a token classifier end to end on ATIS rows."""

import json
import os
import runpy
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATIS = os.path.join(ROOT, "..", "shared", "datasets", "atis")


def _rows(split, n):
    with open(os.path.join(ATIS, f"{split}.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(n), handle, strict=False)]


@pytest.fixture
def tiny_ner_teacher(tmp_path):
    if not os.path.isdir(ATIS):
        pytest.fail(f"the shared ATIS data is missing at {ATIS}")
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from hf_spectralkd.loading import packaged_minilm_path

    train, validation = _rows("train", 24), _rows("validation", 40)
    tags = sorted({t for row in train for t in row["tags"]})
    validation = [row for row in validation if set(row["tags"]) <= set(tags)][:8]
    assert len(validation) >= 4
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=len(tags),
                        id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    teacher_dir = tmp_path / "teacher"
    BertForTokenClassification(config).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    for split, rows in (("train", train), ("validation", validation)):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    return teacher_dir, tags


def test_ner_example_distils_a_token_classifier_from_the_command_line(tmp_path, tiny_ner_teacher, monkeypatch):
    teacher_dir, tags = tiny_ner_teacher
    out = tmp_path / "student"
    argv = [
        "run_ner_distillation.py", "--teacher", str(teacher_dir), "--student_num_layers", "2",
        "--student_init_layers", "2,4", "--train_file", str(tmp_path / "train.jsonl"),
        "--validation_file", str(tmp_path / "validation.jsonl"), "--text_column_name", "tokens",
        "--label_column_name", "tags", "--output_dir", str(out), "--max_steps", "3",
        "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--eval_strategy", "steps",
        "--eval_steps", "3", "--logging_steps", "1", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
        "--selection_samples", "16", "--dynamics_samples", "8", "--beta", "0.2",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(os.path.join(ROOT, "examples", "run_ner_distillation.py"), run_name="__main__")
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "layer_map.json", "eval_results.json"} <= files
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["num_hidden_layers"] == 2
    assert [config["id2label"][str(i)] for i in range(len(tags))] == tags
    evaluation = json.loads((out / "eval_results.json").read_text())
    for key in ("eval_f1", "eval_precision", "eval_recall", "eval_accuracy"):
        assert 0.0 <= evaluation[key] <= 1.0, key
    assert evaluation["eval_kd_loss"] > 0.0 and evaluation["eval_freq_loss"] > 0.0
    layer_map = json.loads((out / "layer_map.json").read_text())
    assert layer_map["student_layers"] == [1, 2] and len(layer_map["teacher_layers"]) == 2
