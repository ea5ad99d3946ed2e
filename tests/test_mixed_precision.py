"""Mixed precision: half-precision forwards, float32 loss terms (KD, CE, spectral), no NaN/Inf."""

import math

import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert

from hf_spectralkd import SpectralDistillationTrainer, frequency_alignment_loss

TERMS = ("ce_loss", "kd_loss", "freq_loss")


class DtypeRecordingTrainer(SpectralDistillationTrainer):
    """Remembers the dtype of each loss term as compute_loss produced it."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if model.training else "eval"
        self.term_dtypes = {k: self._metrics[mode][k][-1].dtype for k in TERMS}
        loss = result[0] if return_outputs else result
        self.loss_dtype = loss.dtype
        return result


def _record_linear_dtype(model, store, key):
    def hook(module, inputs, output):
        store[key] = output.dtype

    return model.bert.encoder.layer[0].attention.self.query.register_forward_hook(hook)


def test_bf16_training_has_finite_float32_loss_terms(tmp_path, token_dataset):
    from datasets import Dataset

    teacher, student = tiny_bert(num_layers=4, hidden=32, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)
    seen = {}
    _record_linear_dtype(teacher, seen, "teacher")
    _record_linear_dtype(student, seen, "student")
    args = small_config(tmp_path, bf16=True, spectral_dynamics=False, eval_strategy="no")
    trainer = DtypeRecordingTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=token_dataset,
        eval_dataset=Dataset.from_list(make_token_rows(16, seed=3)),
        data_collator=pad_collate,
    )
    assert trainer.accelerator.mixed_precision == "bf16"
    trainer.train()
    # both forwards really ran under bf16 autocast ...
    assert seen == {"teacher": torch.bfloat16, "student": torch.bfloat16}
    # ... while every loss term was computed in float32
    assert trainer.term_dtypes == {k: torch.float32 for k in TERMS}
    assert trainer.loss_dtype == torch.float32
    logs = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logs) == 4
    for entry in logs:
        for key in ("loss", "grad_norm", *TERMS):
            assert math.isfinite(entry[key]), (key, entry)
        assert entry["freq_loss"] > 0 and entry["ce_loss"] > 0
    metrics = trainer.evaluate()
    for key in ("eval_loss", *(f"eval_{k}" for k in TERMS)):
        assert math.isfinite(metrics[key]), (key, metrics)
    assert trainer.term_dtypes == {k: torch.float32 for k in TERMS}


def test_fp16_autocast_compute_loss_is_float32_and_finite(tmp_path, token_dataset):
    """CPU fp16 autocast around the whole loss (as on CUDA with fp16): terms stay float32, gradients finite."""
    teacher, student = tiny_bert(num_layers=4, hidden=32, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)
    seen = {}
    _record_linear_dtype(student, seen, "student")
    trainer = DtypeRecordingTrainer(
        model=student,
        teacher_model=teacher,
        args=small_config(tmp_path, spectral_dynamics=False, teacher_layers=[2, 4]),
        train_dataset=token_dataset,
        data_collator=pad_collate,
    )
    trainer.setup_layer_map()
    batch = pad_collate(make_token_rows(8, seed=5))
    student.train()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = trainer.compute_loss(student, batch)
    assert seen["student"] == torch.float16
    assert trainer.term_dtypes == {k: torch.float32 for k in TERMS} and loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert all(torch.isfinite(trainer._metrics["train"][k][-1]) for k in TERMS)
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_bf16_teacher_weights_with_float32_student(tmp_path, token_dataset):
    """A teacher loaded in bfloat16 (to save memory) distils into a float32 student without casts by the user."""
    teacher = tiny_bert(num_layers=4, hidden=32, seed=0).to(torch.bfloat16)
    student = tiny_bert(num_layers=2, hidden=16, seed=1)
    trainer = DtypeRecordingTrainer(
        model=student,
        teacher_model=teacher,
        args=small_config(tmp_path, max_steps=2, spectral_dynamics=False, teacher_layers=[2, 4]),
        train_dataset=token_dataset,
        data_collator=pad_collate,
    )
    trainer.train()
    assert trainer.term_dtypes == {k: torch.float32 for k in TERMS}
    for entry in (e for e in trainer.state.log_history if "loss" in e):
        assert all(math.isfinite(entry[k]) for k in ("loss", *TERMS))


def test_frequency_loss_on_half_inputs_is_computed_in_float32():
    g = torch.Generator().manual_seed(0)
    # activations of a few hundred: their squared spectra overflow float16 (max 65504)
    s = (torch.randn(2, 16, 24, generator=g) * 400).to(torch.float16)
    t = (torch.randn(2, 16, 32, generator=g) * 400).to(torch.float16)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    for half in (torch.float16, torch.bfloat16):
        loss = frequency_alignment_loss(s.to(half), t.to(half), mask)
        reference = frequency_alignment_loss(s.to(half).float(), t.to(half).float(), mask)
        assert loss.dtype == torch.float32
        assert torch.isfinite(loss) and loss.item() > torch.finfo(torch.float16).max
        assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
