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
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"])
    return get_peft_model(base, config)


@pytest.fixture
def lora_run(tmp_path, token_dataset):
    student = _lora_student(str(tmp_path / "base"))
    before = {k: v.detach().clone() for k, v in student.named_parameters()}
    trainer = SpectralDistillationTrainer(
        model=student, teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0), train_dataset=token_dataset,
        data_collator=pad_collate, args=small_config(tmp_path, max_steps=3, learning_rate=5e-3, spectral_dynamics=False,
                                                     teacher_layers=[2, 4]),
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
    freq = torch.stack([frequency_alignment_loss(out.hidden_states[s], t_out.hidden_states[t], batch["attention_mask"])
                        for s, t in [(1, 2), (2, 4)]]).mean()
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
    assert config["base_model_name_or_path"] == str(tmp_path / "base")

    batch = pad_collate(make_token_rows(8, seed=4))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    student.eval()
    with torch.no_grad():
        expected = student(**inputs).logits
        auto = AutoPeftModelForSequenceClassification.from_pretrained(out).eval()
        manual = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "base")), out).eval()
        untouched = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "base")).eval()
        torch.testing.assert_close(auto(**inputs).logits, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(manual(**inputs).logits, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(untouched(**inputs).logits, expected, atol=1e-4)  # the adapter carries the training
