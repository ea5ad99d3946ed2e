"""Resume from a checkpoint: layer map restored (not re-selected), no teacher in checkpoints, same result."""

import json
import os

import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert

import hf_spectralkd.distillation_trainer as trainer_module
from hf_spectralkd import SpectralDistillationTrainer

MAX_STEPS, SAVE_STEPS = 8, 3  # 32 rows / batch 8 = 4 steps per epoch: the resumed part crosses an epoch boundary


def _trainer(output_dir, tmp_path):
    from datasets import Dataset

    args = small_config(
        tmp_path,
        output_dir=str(output_dir),
        max_steps=MAX_STEPS,
        save_strategy="steps",
        save_steps=SAVE_STEPS,
        learning_rate=1e-3,
        selection_samples=32,
        spectral_dynamics=False,
        seed=7,
        data_seed=7,
    )
    return SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=args,
        train_dataset=Dataset.from_list(make_token_rows(32, seed=0)),
        eval_dataset=Dataset.from_list(make_token_rows(16, seed=9)),
        data_collator=pad_collate,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    full = _trainer(tmp / "full", tmp)
    full.train()
    full_metrics = full.evaluate()

    def no_selection(*args, **kwargs):
        raise AssertionError("the resumed run re-ran the spectral layer selection")

    original = trainer_module.collect_profile
    trainer_module.collect_profile = no_selection
    try:
        resumed = _trainer(tmp / "resumed", tmp)
        resumed.train(resume_from_checkpoint=str(tmp / "full" / f"checkpoint-{SAVE_STEPS}"))
        resumed_metrics = resumed.evaluate()
    finally:
        trainer_module.collect_profile = original
    return tmp, full, full_metrics, resumed, resumed_metrics


def test_layer_map_is_restored_from_the_checkpoint(runs):
    tmp, full, _, resumed, _ = runs
    checkpoint = tmp / "full" / f"checkpoint-{SAVE_STEPS}"
    with open(checkpoint / "layer_map.json", encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["teacher_layers"] == full.layer_map.teacher_layers and saved["strategy"] == "topk"
    assert resumed.layer_map.teacher_layers == full.layer_map.teacher_layers
    assert resumed.layer_map.student_layers == full.layer_map.student_layers
    assert resumed.layer_map.teacher_intensity == pytest.approx(full.layer_map.teacher_intensity)
    assert resumed.spectral_profile is None  # nothing was measured again


def test_checkpoints_hold_the_student_only(runs):
    from safetensors.torch import load_file

    tmp, full, _, _, _ = runs
    student_state = full.accelerator.unwrap_model(full.model).state_dict()
    teacher_numel = sum(p.numel() for p in full.teacher.parameters())
    for step in (3, 6):
        checkpoint = tmp / "full" / f"checkpoint-{step}"
        files = set(os.listdir(checkpoint))
        assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", "layer_map.json"} <= files
        weights = [
            f for f in files if f.endswith((".safetensors", ".bin", ".pt", ".pth")) and f != "training_args.bin"
        ]
        assert sorted(weights) == ["model.safetensors", "optimizer.pt", "rng_state.pth", "scheduler.pt"]
        saved = load_file(str(checkpoint / "model.safetensors"))
        assert set(saved) == set(student_state)
        assert all(saved[k].shape == student_state[k].shape for k in saved)
        assert sum(t.numel() for t in saved.values()) < teacher_numel
        # the optimizer only tracks student parameters
        optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=False)
        tracked = sum(len(g["params"]) for g in optimizer["param_groups"])
        assert tracked == sum(1 for p in full.accelerator.unwrap_model(full.model).parameters() if p.requires_grad)


def test_resumed_run_ends_where_the_uninterrupted_one_does(runs):
    _, full, full_metrics, resumed, resumed_metrics = runs
    assert resumed.state.global_step == full.state.global_step == MAX_STEPS
    full_params = dict(full.accelerator.unwrap_model(full.model).named_parameters())
    for name, param in resumed.accelerator.unwrap_model(resumed.model).named_parameters():
        torch.testing.assert_close(param, full_params[name], rtol=1e-5, atol=1e-6, msg=name)
    # the logged loss components of the steps after the checkpoint agree as well
    full_logs = {e["step"]: e for e in full.state.log_history if "loss" in e}
    resumed_logs = {e["step"]: e for e in resumed.state.log_history if "loss" in e}
    # (steps 1..3 come back from the checkpoint's trainer_state.json, 4..8 were trained after resuming)
    assert sorted(resumed_logs) == list(range(1, MAX_STEPS + 1))
    for step, entry in resumed_logs.items():
        for key in ("loss", "ce_loss", "kd_loss", "freq_loss"):
            assert entry[key] == pytest.approx(full_logs[step][key], rel=1e-4, abs=1e-7), (step, key)
    for key in ("eval_loss", "eval_ce_loss", "eval_kd_loss", "eval_freq_loss"):
        assert resumed_metrics[key] == pytest.approx(full_metrics[key], rel=1e-5), key
