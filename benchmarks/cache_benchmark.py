"""Teacher-cache benchmark on the default CLINC150 setting (MiniLM-L6 teacher -> 3-block student, max_length 64,
batch 32, 3 aligned layers chosen by spectral top-k).

Measures, in one run on this machine:
* the training step time with the live teacher (uncached) and reading the teacher cache (every epoch after the
  cache is built: the cache replaces the teacher's forward pass), as the median over steps of alternating runs
  (uncached, cached, uncached, cached, ...) so that load from other processes hits both alike;
* the floor: a plain fine-tuning step of the same student (no teacher, cross-entropy only, ``transformers.Trainer``),
  timed in the same alternation -- a cached step cannot be cheaper than this;
* the one-off cost of building the cache (one teacher pass over the training examples);
* disk use per 1,000 examples (measured on the benchmark subset, and projected for the full train split from its
  real-token count).

    python benchmarks/cache_benchmark.py                       # writes benchmarks/results/cache_benchmark.json
    python benchmarks/cache_benchmark.py --train-samples 320 --rounds 1   # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    label_names,
    load_clinc,
    machine_info,
    student_from_teacher,
    teacher_from_packaged,
    write_json,
)


def _dataset(tokenizer, rows, label2id, max_length):
    import datasets

    from hf_spectralkd.commands.cache_teacher import tokenize_split

    raw = datasets.Dataset.from_list(rows)
    data = tokenize_split(tokenizer, raw, "text", max_length=max_length)
    return data.add_column("labels", [label2id[r["label"]] for r in rows])


def _step_timer():
    """A TrainerCallback recording the seconds of each optimizer step in ``.times``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._start = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def _run_floor(teacher, student_layers, dataset, collator, batch_size, steps, out_dir):
    """The same student fine-tuned without any teacher (CE only) for ``steps`` steps; per-step seconds."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=out_dir,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=1e-4,
        logging_steps=10,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=42,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    timer = _step_timer()
    trainer = Trainer(
        model=student_from_teacher(teacher, student_layers, seed=0),
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[timer],
    )
    trainer.train()
    return timer.times[1:]


def _run(teacher, student_layers, teacher_layers, dataset, collator, batch_size, steps, out_dir, cache_dir=None):
    """Train a fresh student for ``steps`` steps; returns per-step seconds (the first step excluded)."""
    from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer

    args = SpectralDistillationConfig(
        output_dir=out_dir,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=128,
        learning_rate=1e-4,
        alpha=0.9,
        temperature=1.0,
        beta=0.2,
        teacher_layers=teacher_layers,
        spectral_dynamics=False,
        logging_steps=10,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=42,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    timer = _step_timer()
    trainer = SpectralDistillationTrainer(
        model=student_from_teacher(teacher, student_layers, seed=0),
        teacher_model=teacher,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[timer],
        teacher_cache=cache_dir,
    )
    build_seconds = None
    if cache_dir is not None:  # built (or reused) here rather than inside train(), to time it on its own
        start = time.perf_counter()
        trainer.setup_teacher_cache()
        build_seconds = time.perf_counter() - start
    trainer.train()
    logs = [e for e in trainer.state.log_history if "freq_loss" in e]
    return timer.times[1:], build_seconds, logs


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--train-samples", type=int, default=640, help="Training examples (seeded sample of CLINC150 train)."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="Alternating (uncached, cached) epoch pairs to time.")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is steadier on a shared machine)."
    )
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "cache_benchmark.json"))
    return parser.parse_args(argv)


def _alternate(teacher, student_layers, teacher_layers, dataset, collator, args, steps) -> dict:
    """``args.rounds`` rounds of (uncached, cached, student-only) epochs; per-step seconds and the cache's sizes."""
    from hf_spectralkd.teacher_cache import TeacherCache

    work = tempfile.mkdtemp(prefix="cache_bench_")
    cache_dir = os.path.join(work, "cache")
    runs = {"uncached": [], "cached": [], "floor": [], "builds": [], "last_logs": {}}
    try:
        for round_index in range(args.rounds):
            times, _, runs["last_logs"]["uncached"] = _run(
                teacher,
                student_layers,
                teacher_layers,
                dataset,
                collator,
                args.batch_size,
                steps,
                os.path.join(work, f"u{round_index}"),
            )
            runs["uncached"].extend(times)
            times, build, runs["last_logs"]["cached"] = _run(
                teacher,
                student_layers,
                teacher_layers,
                dataset,
                collator,
                args.batch_size,
                steps,
                os.path.join(work, f"c{round_index}"),
                cache_dir,
            )
            runs["cached"].extend(times)
            runs["builds"].append(build)
            runs["floor"].extend(
                _run_floor(
                    teacher,
                    student_layers,
                    dataset,
                    collator,
                    args.batch_size,
                    steps,
                    os.path.join(work, f"f{round_index}"),
                )
            )
        cache = TeacherCache(cache_dir)
        runs.update(
            disk=cache.disk_bytes(),
            n_tokens=cache.meta["num_tokens"],
            n_examples=len(cache),
            width=cache.hidden.shape[2],
            k=cache.hidden.shape[1],
            num_labels=cache.logits.shape[1],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return runs


def _step_summary(runs: dict) -> dict:
    """Median and mean step seconds of the three kinds of run, and their ratios."""
    uncached, cached, floor = runs["uncached"], runs["cached"], runs["floor"]
    u, c, f = statistics.median(uncached), statistics.median(cached), statistics.median(floor)
    return {
        "step_seconds": {
            "uncached_median": round(u, 4),
            "cached_median": round(c, 4),
            "uncached_mean": round(statistics.mean(uncached), 4),
            "cached_mean": round(statistics.mean(cached), 4),
            "student_only_median": round(f, 4),
            "student_only_mean": round(statistics.mean(floor), 4),
            "n_uncached": len(uncached),
            "n_cached": len(cached),
            "n_student_only": len(floor),
        },
        "cached_over_uncached": round(c / u, 3),
        "student_only_over_uncached": round(f / u, 3),
        "cached_over_student_only": round(c / f, 3),
        "floor_note": "student_only = the same student fine-tuned with cross-entropy only (no teacher, no KD, no "
        "alignment): the least a cached step can cost; cached_over_student_only is what reading the cache plus "
        "the KD and frequency losses add on top of it",
        "goal_cached_over_uncached_max": 0.6,
        "goal_met": c / u <= 0.6,
    }


def _disk_summary(runs: dict, tokenizer, max_length: int) -> dict:
    """Disk use of the benchmark's cache, and its projection for the whole train split (from its real tokens)."""
    disk, n_examples, k, width = runs["disk"], runs["n_examples"], runs["k"], runs["width"]
    full = load_clinc("train")
    encoded = tokenizer([r["text"] for r in full], truncation=True, max_length=max_length)["input_ids"]
    full_tokens = sum(len(ids) for ids in encoded)
    per_example_fixed = runs["num_labels"] * 2 + 3 * 8  # logits (fp16) + id, offset, checksum (int64)
    full_bytes = full_tokens * k * width * 2 + len(full) * per_example_fixed
    return {
        "bytes": disk,
        "examples": n_examples,
        "real_tokens": runs["n_tokens"],
        "layers": k,
        "hidden": width,
        "mib_per_1000_examples": round(disk / 2**20 / n_examples * 1000, 2),
        "full_train_split": {
            "examples": len(full),
            "real_tokens": full_tokens,
            "projected_mib": round(full_bytes / 2**20, 1),
            "projected_mib_per_1000_examples": round(full_bytes / 2**20 / len(full) * 1000, 2),
        },
    }


def main(argv=None) -> int:
    args = _parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from transformers import DataCollatorWithPadding

    from hf_spectralkd import collect_profile, select_layers

    names = label_names()
    label2id = {n: i for i, n in enumerate(names)}
    teacher, tokenizer = teacher_from_packaged(num_labels=len(names), id2label=names)
    teacher.eval()
    student_layers = [2, 4, 6]  # the default recipe copies teacher blocks 2, 4, 6 into the 3-block student
    rows = load_clinc("train", limit=args.train_samples, seed=42)
    dataset = _dataset(tokenizer, rows, label2id, args.max_length)
    collator = DataCollatorWithPadding(tokenizer)

    # the aligned teacher layers: spectral top-3 over the training sample, as the default recipe does
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset.remove_columns(["example_id", "labels"]), batch_size=64, collate_fn=collator)
    profile = collect_profile(teacher, loader, max_samples=256)
    teacher_layers = select_layers(profile.intensity, 3, strategy="topk")

    steps = len(dataset) // args.batch_size  # one epoch
    runs = _alternate(teacher, student_layers, teacher_layers, dataset, collator, args, steps)
    u, c, f = (statistics.median(runs[key]) for key in ("uncached", "cached", "floor"))
    result = {
        "benchmark": "teacher cache (hf_spectralkd.teacher_cache)",
        "command": "python benchmarks/cache_benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "setting": {
            "teacher": "packaged MiniLM-L6 (6 blocks, hidden 384), 150-label head",
            "student_copied_layers": student_layers,
            "aligned_teacher_layers": teacher_layers,
            "train_samples": len(dataset),
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "steps_per_epoch": steps,
            "rounds": args.rounds,
            "device": "cpu",
        },
        **_step_summary(runs),
        "cache_build_seconds": [round(b, 2) for b in runs["builds"]],
        "cache_build_note": "the first build runs the teacher once over the examples; later rounds reuse it "
        "(fingerprint unchanged)",
        "disk": _disk_summary(runs, tokenizer, args.max_length),
        "last_logged": {key: logs[-1] if logs else None for key, logs in runs["last_logs"].items()},
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
    }
    write_json(args.output, result)
    print(
        f"uncached step {u * 1000:.0f} ms, cached step {c * 1000:.0f} ms -> ratio {c / u:.2f} (goal <= 0.6); "
        f"student-only floor {f * 1000:.0f} ms ({f / u:.2f}x uncached; cached = {c / f:.2f}x the floor); "
        f"cache build {runs['builds'][0]:.1f} s; disk {result['disk']['mib_per_1000_examples']} MiB per 1,000 "
        f"examples -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
