"""LoRA students: hidden states aligned, only adapter + classifier train, the result is a reloadable PEFT adapter."""

import json
import os

import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert

from hf_spectralkd import SpectralDistillationTrainer, frequency_alignment_loss, get_adapter


def _lora_student(base_dir):
    """A LoRA-wrapped 2-block student whose base weights are saved in ``base_dir`` (so the adapter can reload)."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    tiny_bert(num_layers=2, hidden=16, seed=1).save_pretrained(base_dir)
    base = AutoModelForSequenceClassification.from_pretrained(base_dir)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"]
    )
    return get_peft_model(base, config)


@pytest.fixture
def lora_run(tmp_path, token_dataset):
    student = _lora_student(str(tmp_path / "base"))
    before = {k: v.detach().clone() for k, v in student.named_parameters()}
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        train_dataset=token_dataset,
        data_collator=pad_collate,
        args=small_config(tmp_path, max_steps=3, learning_rate=5e-3, spectral_dynamics=False, teacher_layers=[2, 4]),
    )
    trainer.train()
    trainer.save_model()
    return trainer, student, before


def test_adapter_sees_the_peft_model_and_its_hidden_states(tmp_path):
    student = _lora_student(str(tmp_path / "base"))
    adapter = get_adapter(student)
    assert adapter.num_layers(student) == 2 and adapter.num_labels(student) == 3  # _config reads the base config
    teacher = tiny_bert(num_layers=4, hidden=32, seed=0).eval()
    batch = pad_collate(make_token_rows(8, seed=2))
    out = adapter.forward(student, batch, output_hidden_states=True)
    assert len(out.hidden_states) == 3  # embeddings + 2 blocks come out through the PEFT wrapper
    with torch.no_grad():
        t_out = get_adapter(teacher).forward(teacher, batch, output_hidden_states=True)
    freq = torch.stack(
        [
            frequency_alignment_loss(out.hidden_states[s], t_out.hidden_states[t], batch["attention_mask"])
            for s, t in [(1, 2), (2, 4)]
        ]
    ).mean()
    assert freq.item() > 0
    freq.backward()
    # the alignment gradient reaches the LoRA weights (lora_B: lora_A's gradient is zero while B is at its zero init)
    lora_b = [p.grad for n, p in student.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 4 and all(g is not None and g.abs().sum() > 0 for g in lora_b)
    frozen = [p.grad for n, p in student.named_parameters() if "lora_" not in n and "modules_to_save" not in n]
    assert all(g is None for g in frozen)


def test_only_adapter_and_classifier_train(lora_run):
    trainer, student, before = lora_run
    logs = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logs) == 3 and all(e["freq_loss"] > 0 for e in logs)
    changed = {k for k, v in student.named_parameters() if not torch.equal(v.detach(), before[k])}
    trainable = {k for k, v in student.named_parameters() if v.requires_grad}
    assert changed and changed <= trainable
    assert all("lora_" in k or "modules_to_save" in k for k in trainable)
    assert any("lora_B" in k for k in changed) and any("classifier.modules_to_save" in k for k in changed)
    frozen = [k for k in before if k not in trainable]
    assert frozen and all(torch.equal(dict(student.named_parameters())[k].detach(), before[k]) for k in frozen)


def test_saved_result_is_a_reloadable_peft_adapter(lora_run, tmp_path):
    from peft import AutoPeftModelForSequenceClassification, PeftModel
    from transformers import AutoModelForSequenceClassification

    trainer, student, _ = lora_run
    out = trainer.args.output_dir
    files = set(os.listdir(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "layer_map.json"} <= files
    assert "model.safetensors" not in files  # the adapter, not a full copy of the student
    with open(os.path.join(out, "adapter_config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    assert config["peft_type"] == "LORA" and config["task_type"] == "SEQ_CLS"
    # the adapter points at the student's own base, saved beside it (not at whatever the student was built from)
    assert config["base_model_name_or_path"] == os.path.join(os.path.abspath(out), "base_model")
    assert os.path.isfile(os.path.join(out, "base_model", "model.safetensors"))

    batch = pad_collate(make_token_rows(8, seed=4))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    student.eval()
    with torch.no_grad():
        expected = student(**inputs).logits
        auto = AutoPeftModelForSequenceClassification.from_pretrained(out).eval()
        manual = PeftModel.from_pretrained(
            AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "base")), out
        ).eval()
        untouched = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "base")).eval()
        torch.testing.assert_close(auto(**inputs).logits, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(manual(**inputs).logits, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(untouched(**inputs).logits, expected, atol=1e-4)  # the adapter carries the training


# ---------------------------------------------------------------- recipe option: student.peft
LABELS = ["timer", "translate", "weather"]


def _clinc_subset(split, per_label):
    from conftest import SHARED_DATA

    rows, counts = [], {}
    with open(os.path.join(SHARED_DATA, f"{split}.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["label"] in LABELS and counts.get(row["label"], 0) < per_label:
                counts[row["label"]] = counts.get(row["label"], 0) + 1
                rows.append(row)
    return rows


@pytest.fixture(scope="module")
def peft_recipe(tmp_path_factory):
    """A tiny BERT base (MiniLM tokenizer), a 3-intent CLINC150 subset and a recipe with a LoRA student."""
    import yaml
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hf_spectralkd.loading import packaged_minilm_path

    root = tmp_path_factory.mktemp("peft_pipeline")
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
    BertForSequenceClassification(config).save_pretrained(root / "tiny_bert")
    tokenizer.save_pretrained(root / "tiny_bert")
    (root / "data").mkdir()
    for split, n in (("train", 16), ("validation", 4), ("test", 6)):
        with open(root / "data" / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in _clinc_subset(split, n))
    recipe = {
        "name": "tiny_lora",
        "teacher": {
            "base": str(root / "tiny_bert"),
            "finetune": {"epochs": 1, "max_steps": 2, "batch_size": 16, "learning_rate": "1e-3"},
        },
        "student": {
            "init": "teacher_layers",
            "num_layers": 2,
            "init_layers": "uniform",
            "peft": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["query", "value"]},
        },
        "data": {"source": str(root / "data"), "max_length": 24, "name": "clinc150-3"},
        "distillation": {"beta": 0.2, "selection_samples": 16, "spectral_dynamics": False},
        "training": {
            "max_steps": 2,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 32,
            "learning_rate": "1e-2",
            "logging_steps": 1,
            "disable_tqdm": True,
        },
        "evaluation": {"split": "test", "baseline": False},
        "output": {"dir": str(root / "run")},
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path, root


def test_recipe_student_peft_trains_a_lora_student(peft_recipe):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from hf_spectralkd.pipeline import run_pipeline
    from hf_spectralkd.recipes import load_recipe

    path, root = peft_recipe
    results = run_pipeline(load_recipe(str(path)), log=lambda line: None)
    student_dir = root / "run" / "student"
    adapter_dir = student_dir / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "layer_map.json"} <= set(os.listdir(adapter_dir))
    assert {"config.json", "model.safetensors", "layer_map.json"} <= set(os.listdir(student_dir))
    assert "adapter_config.json" not in os.listdir(student_dir)  # the top level is an ordinary (merged) model
    with open(adapter_dir / "adapter_config.json", encoding="utf-8") as handle:
        adapter_config = json.load(handle)
    assert adapter_config["r"] == 4 and sorted(adapter_config["target_modules"]) == ["query", "value"]
    assert results["student"]["num_layers"] == 2 and 0.0 <= results["student"]["metrics"]["accuracy"] <= 1.0
    log = json.loads((student_dir / "training_log.json").read_text())
    assert [e["freq_loss"] > 0 for e in log if "freq_loss" in e] == [True, True]

    from safetensors.torch import load_file

    adapter_weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    assert any("lora_B" in k for k in adapter_weights) and any("classifier" in k for k in adapter_weights)
    # the merged student: frozen weights are the teacher blocks it was copied from, LoRA targets have moved
    merged = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    teacher = AutoModelForSequenceClassification.from_pretrained(root / "run" / "teacher")
    for student_block, teacher_block in enumerate(results["student"]["init_layers"]):
        s_layer, t_layer = merged.bert.encoder.layer[student_block], teacher.bert.encoder.layer[teacher_block - 1]
        torch.testing.assert_close(s_layer.intermediate.dense.weight, t_layer.intermediate.dense.weight)
        torch.testing.assert_close(s_layer.attention.self.key.weight, t_layer.attention.self.key.weight)
        assert not torch.allclose(s_layer.attention.self.query.weight, t_layer.attention.self.query.weight)
    # and the adapter reloads onto a base built like the pipeline's (teacher blocks copied) with the same logits
    base = AutoModelForSequenceClassification.from_pretrained(root / "run" / "teacher")
    base.bert.encoder.layer = torch.nn.ModuleList(
        [base.bert.encoder.layer[t - 1] for t in results["student"]["init_layers"]]
    )
    base.config.num_hidden_layers = 2
    reloaded = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    from peft import AutoPeftModelForSequenceClassification

    auto = AutoPeftModelForSequenceClassification.from_pretrained(str(adapter_dir)).eval()  # onto adapter/base_model
    inputs = {"input_ids": torch.randint(1000, 2000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long)}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, merged(**inputs).logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(auto(**inputs).logits, merged(**inputs).logits, rtol=1e-4, atol=1e-5)


def test_bad_student_peft_field_fails_before_any_work(peft_recipe, tmp_path):
    from hf_spectralkd.pipeline import run_pipeline
    from hf_spectralkd.recipes import load_recipe

    path, _ = peft_recipe
    out = tmp_path / "bad"
    recipe = load_recipe(str(path), [f"output.dir={out}", "student.peft={rank: 4}"])
    with pytest.raises(ValueError, match=r"student\.peft: .*rank.*valid keys are LoraConfig fields"):
        run_pipeline(recipe, log=lambda line: None)
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".args-check"]
