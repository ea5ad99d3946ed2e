"""GPU check: one short run that prints the figures the project has no GPU measurement of yet.

On one H100 / H200 (under 5 minutes)::

    python benchmarks/gpu_check.py                 # writes benchmarks/results/gpu_check.json

* the bf16 training-step time of SpectralKD (beta 0.2, two aligned pairs) over logit KD (beta 0), both through
  ``SpectralDistillationTrainer``, for a RoBERTa-large-sized teacher (24 blocks x 1024, built from a config: no
  download) and a 6-block student copied from it, batch 32 x 128 tokens; median of the timed steps after warm-up;
* the peak GPU memory of both runs;
* the teacher-cache build throughput (examples/s, logits + the two aligned layers);
* a two-step FSDP and a two-step DeepSpeed ZeRO-2 smoke on the one GPU (``torchrun --nproc_per_node 1``), each
  only if its package is installed (reported as skipped otherwise).

``--tiny`` runs the same code on the CPU with tiny sizes (CI runs it: the script cannot rot between loans of a
device); its figures mean nothing about GPUs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from benchmarks.common import RESULTS_DIR, machine_info, write_json  # noqa: E402

FULL = dict(layers=24, hidden=1024, heads=16, intermediate=4096, vocab=50265, student_layers=6, batch=32,
            length=128, warmup=3, steps=10, cache_examples=1024, labels=150)
TINY = dict(layers=4, hidden=64, heads=2, intermediate=128, vocab=1000, student_layers=2, batch=8, length=16,
            warmup=1, steps=3, cache_examples=64, labels=5)


def teacher_model(size):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=size["vocab"], hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                           num_attention_heads=size["heads"], intermediate_size=size["intermediate"],
                           max_position_embeddings=size["length"] + 2, num_labels=size["labels"], pad_token_id=1)
    return RobertaForSequenceClassification(config)


def dataset(size, n):
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, size["vocab"], (n, size["length"]), generator=g)
    labels = torch.randint(0, size["labels"], (n,), generator=g)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * size["length"]] * n,
                              "labels": labels.tolist()})


def collate(rows):
    return {k: torch.tensor([r[k] for r in rows]) for k in rows[0]}


def step_times(teacher, size, beta, cuda, output_dir, extra=None):
    """Median step time (ms) and peak memory (MiB) of ``warmup + steps`` training steps of a fresh student."""
    from transformers import TrainerCallback

    from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, build_student

    student = build_student(teacher, size["student_layers"], "uniform")
    times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            times.append(1000 * (time.perf_counter() - self.start))

    n = size["batch"] * (size["warmup"] + size["steps"])
    args = SpectralDistillationConfig(
        output_dir=output_dir, max_steps=size["warmup"] + size["steps"], per_device_train_batch_size=size["batch"],
        per_device_eval_batch_size=size["batch"], beta=beta, teacher_layers=[size["layers"] // 2, size["layers"]],
        student_layers=[size["student_layers"] // 2, size["student_layers"]], bf16=cuda, use_cpu=not cuda,
        report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1000, spectral_dynamics=False,
        **(extra or {}))
    trainer = SpectralDistillationTrainer(model=student, teacher_model=teacher, args=args,
                                          train_dataset=dataset(size, n), data_collator=collate, callbacks=[Clock()])
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = times[size["warmup"]:]
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    del trainer, student
    return {"median_ms": round(statistics.median(timed), 2), "steps": len(timed),
            "peak_memory_mib": round(peak, 1) if peak is not None else None}


def cache_throughput(teacher, size, cuda, directory):
    from hf_spectralkd.teacher_cache import add_example_ids, build_teacher_cache

    data = add_example_ids(dataset(size, size["cache_examples"]))
    device = torch.device("cuda" if cuda else "cpu")
    teacher = teacher.to(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        cache = build_teacher_cache(teacher, data, collate, [size["layers"] // 2, size["layers"]], directory,
                                    batch_size=size["batch"], device=device)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"examples": len(cache), "seconds": round(seconds, 2), "examples_per_s": round(len(cache) / seconds, 1),
            "disk_mib": round(cache.disk_bytes() / 2**20, 1)}


def smoke(kind, tiny):
    """Two training steps under FSDP or DeepSpeed ZeRO-2 in a one-process torchrun, when the package is there."""
    if kind == "deepspeed" and importlib.util.find_spec("deepspeed") is None:  # FSDP is part of torch
        return {"status": "skipped", "reason": "deepspeed is not installed"}
    if not torch.cuda.is_available():
        return {"status": "skipped", "reason": "needs a CUDA device"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", os.path.abspath(__file__),
               "--smoke-worker", kind] + (["--tiny"] if tiny else [])
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    result = {"status": "ok" if done.returncode == 0 else "failed", "seconds": round(time.perf_counter() - start, 1)}
    if done.returncode != 0:
        result["tail"] = (done.stdout + done.stderr)[-1500:]
    return result


def smoke_worker(kind, size):
    """Inside torchrun: two bf16 steps of SpectralKD with the teacher and student under ``kind``."""
    extra = {}
    if kind == "fsdp":
        extra = {"fsdp": "full_shard", "fsdp_config": {"transformer_layer_cls_to_wrap": ["RobertaLayer"]}}
    else:
        extra = {"deepspeed": {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                               "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto"}}
    small = dict(size, warmup=0, steps=2)
    with tempfile.TemporaryDirectory() as scratch:
        result = step_times(teacher_model(size), small, 0.2, True, scratch, extra)
    print(json.dumps({"smoke": kind, **result}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (CI)")
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/gpu_check.json; "
                                                     "--tiny: not written unless given)")
    parser.add_argument("--smoke-worker", choices=("fsdp", "deepspeed"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = TINY if args.tiny else FULL
    if args.smoke_worker:
        return smoke_worker(args.smoke_worker, size)
    cuda = torch.cuda.is_available() and not args.tiny
    if not args.tiny and not cuda:
        raise SystemExit("gpu_check needs a CUDA device (use --tiny for the CPU version of the same code)")
    start = time.perf_counter()
    teacher = teacher_model(size)
    if cuda:
        teacher = teacher.cuda()
    results = {"machine": machine_info(shared=False), "sizes": size, "precision": "bf16" if cuda else "fp32"}
    with tempfile.TemporaryDirectory() as scratch:
        results["logit_kd"] = step_times(teacher, size, 0.0, cuda, os.path.join(scratch, "logit"))
        results["spectralkd"] = step_times(teacher, size, 0.2, cuda, os.path.join(scratch, "spectral"))
        results["step_time_ratio_spectralkd_over_logit_kd"] = round(
            results["spectralkd"]["median_ms"] / results["logit_kd"]["median_ms"], 3)
        results["teacher_cache"] = cache_throughput(teacher, size, cuda, os.path.join(scratch, "cache"))
    results["fsdp_smoke"] = smoke("fsdp", args.tiny)
    results["deepspeed_zero2_smoke"] = smoke("deepspeed", args.tiny)
    results["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results, indent=1))
    out = args.out or (None if args.tiny else os.path.join(RESULTS_DIR, "gpu_check.json"))
    if out:
        write_json(out, results)
    return results


if __name__ == "__main__":
    main()
