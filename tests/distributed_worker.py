"""Worker for tests/test_distributed.py: one rank of a 2-process CPU (gloo) SpectralKD run.

Launched with ``python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT_DIR``.
Each rank writes ``rank<r>.json`` to OUT_DIR with: the layer map it trains with, the layers it would have
chosen from its own (deliberately reversed on rank != 0) profile, its own per-step loss components, the
trainer's logged history, how many times it wrote a model, and a checksum of its final student weights.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

torch.set_num_threads(1)

import transformers.modeling_utils as modeling_utils  # noqa: E402
from conftest import make_token_rows, pad_collate, tiny_bert  # noqa: E402
from datasets import Dataset  # noqa: E402

import hf_spectralkd.layer_map as layer_rule  # noqa: E402
from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer  # noqa: E402

out_dir = sys.argv[1]
rank = int(os.environ["RANK"])
local_choice = {}

_select_layers = layer_rule.select_layers


def perturbed_select_layers(intensity, k, **kwargs):
    """Rank 0 selects from the true profile; other ranks from a reversed one, so a per-rank choice differs."""
    if rank != 0:
        intensity = torch.as_tensor(intensity).flip(0)
    local_choice["teacher_layers"] = _select_layers(intensity, k, **kwargs)
    return local_choice["teacher_layers"]


layer_rule.select_layers = perturbed_select_layers

# count the weight files this process actually writes
model_writes = []
_safe_save_file = modeling_utils.safe_save_file


def counting_safe_save_file(tensors, filename, *args, **kwargs):
    model_writes.append(os.path.basename(filename))
    return _safe_save_file(tensors, filename, *args, **kwargs)


modeling_utils.safe_save_file = counting_safe_save_file


class RecordingTrainer(SpectralDistillationTrainer):
    """Keeps this rank's own (unreduced) loss components."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.local_steps = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            metrics = self._metrics["train"]
            self.local_steps.append({k: float(metrics[k][-1]) for k in ("ce_loss", "kd_loss", "freq_loss")})
        return result


teacher, student = tiny_bert(num_layers=4, hidden=32, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)
args = SpectralDistillationConfig(
    output_dir=os.path.join(out_dir, "run"),
    max_steps=3,
    per_device_train_batch_size=4,
    logging_steps=1,
    report_to="none",
    save_strategy="no",
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
    ddp_backend="gloo",
    selection_samples=32,
    spectral_dynamics=False,
)
trainer = RecordingTrainer(
    model=student,
    teacher_model=teacher,
    args=args,
    train_dataset=Dataset.from_list(make_token_rows(48)),
    data_collator=pad_collate,
)
trainer.train()
trainer.save_model()
final = trainer.accelerator.unwrap_model(trainer.model)
result = {
    "rank": rank,
    "world_size": trainer.accelerator.num_processes,
    "layer_map": {
        "teacher_layers": trainer.layer_map.teacher_layers,
        "student_layers": trainer.layer_map.student_layers,
    },
    "local_choice": local_choice.get("teacher_layers"),
    "local_steps": trainer.local_steps,
    "log_history": [e for e in trainer.state.log_history if "loss" in e],
    "model_writes": model_writes,
    "teacher_wrapped": type(trainer.teacher).__name__,
    "param_checksum": float(sum(p.double().sum() for p in final.parameters())),
}

# one epoch over 48 rows at 4 per device: a real two-process run takes 6 steps per rank (12 alone)
epoch_args = SpectralDistillationConfig(
    output_dir=os.path.join(out_dir, "epoch_run"), num_train_epochs=1, per_device_train_batch_size=4,
    logging_steps=100, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
    ddp_backend="gloo", selection_samples=32, spectral_dynamics=False, beta=0.0,
)
epoch_trainer = SpectralDistillationTrainer(
    model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=teacher, args=epoch_args,
    train_dataset=Dataset.from_list(make_token_rows(48)), data_collator=pad_collate,
)
epoch_trainer.train()
result["epoch_steps"] = epoch_trainer.state.global_step
with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
    json.dump(result, handle)
