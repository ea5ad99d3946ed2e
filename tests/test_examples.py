"""examples/run_distillation.py runs end to end on tiny data (a tiny BERT teacher with the MiniLM tokenizer)."""

import json
import os
import runpy
import sys

import pytest
from conftest import SHARED_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ["timer", "translate", "weather"]


def _rows(split, per_label):
    rows, counts = [], {}
    with open(os.path.join(SHARED_DATA, f"{split}.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["label"] in LABELS and counts.get(row["label"], 0) < per_label:
                counts[row["label"]] = counts.get(row["label"], 0) + 1
                rows.append(row)
    return rows


@pytest.fixture
def tiny_teacher(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hf_spectralkd.loading import packaged_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    teacher_dir = tmp_path / "teacher"
    BertForSequenceClassification(config).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    for split, n in (("train", 8), ("validation", 4)):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in _rows(split, n))
    return teacher_dir


def test_example_script_distils_a_student_from_the_command_line(tmp_path, tiny_teacher, monkeypatch):
    out = tmp_path / "student"
    argv = [
        "run_distillation.py", "--teacher", str(tiny_teacher), "--student_num_layers", "2",
        "--student_init_layers", "2,4", "--train_file", str(tmp_path / "train.jsonl"),
        "--validation_file", str(tmp_path / "validation.jsonl"), "--output_dir", str(out), "--max_steps", "3",
        "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--eval_strategy", "steps",
        "--eval_steps", "3", "--logging_steps", "1", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
        "--selection_samples", "16", "--dynamics_samples", "8",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(os.path.join(ROOT, "examples", "run_distillation.py"), run_name="__main__")
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "layer_map.json", "eval_results.json"} <= files
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["id2label"] == {"0": "timer", "1": "translate", "2": "weather"}
    evaluation = json.loads((out / "eval_results.json").read_text())
    assert 0.0 <= evaluation["eval_accuracy"] <= 1.0 and evaluation["eval_kd_loss"] >= 0.0
    layer_map = json.loads((out / "layer_map.json").read_text())
    assert layer_map["student_layers"] == [1, 2] and len(layer_map["teacher_layers"]) == 2


def test_example_script_reads_a_yaml_file_with_yaml11_numbers(tmp_path, tiny_teacher):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import run_distillation
    finally:
        sys.path.pop(0)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"teacher: {tiny_teacher}\nstudent_num_layers: 2\ntrain_file: {tmp_path / 'train.jsonl'}\n"
        f"output_dir: {tmp_path / 'yaml_student'}\nlearning_rate: 1e-3\nalpha: 9e-1\nmax_steps: 2\n"
        "per_device_train_batch_size: 8\nreport_to: none\nuse_cpu: true\nselection_samples: 16\n"
    )
    trainer = run_distillation.main([str(config)])
    assert trainer.args.learning_rate == 1e-3 and trainer.args.alpha == 0.9 and trainer.state.global_step == 2
    assert trainer.layer_map.student_layers == [1, 2]
