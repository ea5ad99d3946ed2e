"""Speed benchmark: training-step time of SpectralKD vs. plain fine-tuning, logit KD, hidden-state MSE KD and
TextBrewer; analysis throughput vs. plain inference; analysis peak memory; cost growth of the spectral math.

Run (about 10 minutes on 2 CPU cores)::

    nice -n 5 python benchmarks/speed.py            # writes benchmarks/results/speed.json

Every method trains its own copy of the same 3-layer student on the same CLINC150 batches (batch 32, dynamic
padding); methods are timed alternately, step by step, with the order rotated each step, so that load from
other processes hits all of them alike. Reported: median step time of each method and its ratio to logit KD.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    label_names,
    load_clinc,
    machine_info,
    masked_hidden_mse,
    student_from_teacher,
    teacher_from_packaged,
    tokenize_batches,
    uniform_layers,
    write_json,
)
from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, collect_profile  # noqa: E402
from hf_spectralkd.spectral import FFT_AXES, frequency_alignment_loss, spectral_intensity  # noqa: E402

BASE_METHODS = ["fine_tune", "logit_kd", "hidden_mse_kd"] + [f"spectralkd_{axis}" for axis in FFT_AXES]
STEP_KEYS = ("median_ms", "mean_ms", "p10_ms", "p90_ms", "steps", "samples_per_s")
ALPHA, TAU, BETA, LR = 0.9, 1.0, 0.2, 5e-5


def _logit_terms(s_logits, t_logits, labels):
    """``(1-α)·CE + α·KD`` with the trainer's own KD term."""
    ce = F.cross_entropy(s_logits.float(), labels)
    return (1 - ALPHA) * ce + ALPHA * SpectralDistillationTrainer.logit_kd_loss(s_logits, t_logits, TAU)


def _textbrewer_distiller(teacher, student, pairs, output_dir):
    """TextBrewer's GeneralDistiller with logit KD + hard labels + hidden MSE on ``pairs`` (student, teacher)."""
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig

    device = str(next(student.parameters()).device)
    matches = [
        {"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "hidden_mse", "weight": BETA} for s, t in pairs
    ]
    distill_config = DistillationConfig(
        temperature=TAU,
        hard_label_weight=1 - ALPHA,
        kd_loss_type="ce",
        kd_loss_weight=ALPHA,
        intermediate_matches=matches,
    )
    train_config = TrainingConfig(device=device, output_dir=output_dir, log_dir=None)

    def adaptor(batch, outputs):
        return {
            "logits": outputs.logits,
            "hidden": outputs.hidden_states,
            "inputs_mask": batch["attention_mask"],
            "losses": outputs.loss,
        }

    return GeneralDistiller(
        train_config=train_config,
        distill_config=distill_config,
        model_T=teacher,
        model_S=student,
        adaptor_T=adaptor,
        adaptor_S=adaptor,
    )


def _make_step(method, teacher, student, teacher_layers, student_layers, output_dir):
    """Return ``step(batch)`` doing forward, loss, backward and an AdamW step for ``method``."""
    optimizer = torch.optim.AdamW(student.parameters(), lr=LR)
    pairs = list(zip(student_layers, teacher_layers, strict=True))

    def finish(loss):
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    if method == "fine_tune":

        def step(batch):
            return finish(student(**batch).loss)
    elif method == "logit_kd":

        def step(batch):
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            s = student(**inputs).logits
            with torch.no_grad():
                t = teacher(**inputs).logits
            return finish(_logit_terms(s, t, batch["labels"]))
    elif method == "hidden_mse_kd":

        def step(batch):
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            s = student(**inputs, output_hidden_states=True)
            with torch.no_grad():
                t = teacher(**inputs, output_hidden_states=True)
            mse = torch.stack(
                [masked_hidden_mse(s.hidden_states[i], t.hidden_states[j], batch["attention_mask"]) for i, j in pairs]
            ).mean()
            return finish(_logit_terms(s.logits, t.logits, batch["labels"]) + BETA * mse)
    elif method.startswith("spectralkd_"):
        axis = method[len("spectralkd_") :]
        args = SpectralDistillationConfig(
            output_dir=os.path.join(output_dir, method),
            report_to="none",
            alpha=ALPHA,
            temperature=TAU,
            beta=BETA,
            layer_selection="manual",
            teacher_layers=list(teacher_layers),
            student_layers=list(student_layers),
            fft_axis=axis,
            spectral_dynamics=False,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = SpectralDistillationTrainer(model=student, teacher_model=teacher, args=args)
        trainer.setup_layer_map()
        model = trainer.model

        def step(batch):
            return finish(trainer.compute_loss(model, batch))  # the real SpectralKD loss
    elif method == "textbrewer":
        distiller = _textbrewer_distiller(teacher, student, pairs, os.path.join(output_dir, method))
        tb_args = {"output_hidden_states": True}

        def step(batch):
            loss, _ = distiller.train_on_batch(batch, tb_args)  # TextBrewer's own forward + loss
            return finish(loss)
    else:
        raise ValueError(f"unknown method {method!r}: valid are {', '.join(BASE_METHODS + ['textbrewer'])}")
    return step


def _summary(times, batch_sizes):
    ordered = sorted(times)
    n = len(ordered)
    return {
        "median_ms": 1000 * statistics.median(ordered),
        "mean_ms": 1000 * statistics.fmean(ordered),
        "p10_ms": 1000 * ordered[int(0.1 * (n - 1))],
        "p90_ms": 1000 * ordered[int(0.9 * (n - 1))],
        "steps": n,
        "samples_per_s": sum(batch_sizes) / sum(times),
    }


def time_methods(
    teacher, student, batches, teacher_layers, student_layers=None, methods=None, steps=40, warmup=5, output_dir=None
) -> dict:
    """Time one training step of each method, alternating methods step by step (order rotated every step).

    Every method gets its own deep copy of ``student`` and its own AdamW; step ``i`` uses ``batches[i % len]``
    for every method. Returns ``{"methods": {name: {median_ms, mean_ms, p10_ms, p90_ms, steps, samples_per_s}},
    "ratios_to_logit_kd": {name: median ratio}, "steps", "warmup", "teacher_layers", "student_layers"}``.
    """
    methods = list(methods or BASE_METHODS)
    student_layers = list(student_layers or range(1, len(teacher_layers) + 1))
    teacher.eval()
    own_tmp = output_dir is None
    output_dir = output_dir or tempfile.mkdtemp(prefix="spectralkd-speed-")
    steppers = {}
    for method in methods:
        model = copy.deepcopy(student)
        model.train()
        steppers[method] = _make_step(method, teacher, model, teacher_layers, student_layers, output_dir)
    times = {m: [] for m in methods}
    sizes = {m: [] for m in methods}
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        rotation = i % len(methods)
        for method in methods[rotation:] + methods[:rotation]:
            start = time.perf_counter()
            steppers[method](batch)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[method].append(elapsed)
                sizes[method].append(int(batch["input_ids"].shape[0]))
    results = {m: _summary(times[m], sizes[m]) for m in methods}
    ratios = {}
    if "logit_kd" in results:
        base = results["logit_kd"]["median_ms"]
        ratios = {m: r["median_ms"] / base for m, r in results.items()}
    if own_tmp:
        import shutil

        shutil.rmtree(output_dir, ignore_errors=True)
    return {
        "methods": results,
        "ratios_to_logit_kd": ratios,
        "steps": steps,
        "warmup": warmup,
        "teacher_layers": list(teacher_layers),
        "student_layers": student_layers,
    }


@torch.inference_mode()
def _plain_inference(model, batch):
    model.eval()
    return model(**{k: v for k, v in batch.items() if k != "labels"}, output_hidden_states=True)


def time_analysis(teacher, batches, rounds=2) -> dict:
    """Throughput of ``collect_profile`` vs. the plain teacher forward with ``output_hidden_states=True``,
    alternating batch by batch (same batches, same order)."""
    inputs = [{k: v for k, v in b.items() if k != "labels"} for b in batches]
    t_plain = t_profile = 0.0
    samples = 0
    _plain_inference(teacher, inputs[0])
    collect_profile(teacher, [inputs[0]])
    for r in range(rounds):
        for i, batch in enumerate(inputs):
            pair = [
                ("plain", lambda batch=batch: _plain_inference(teacher, batch)),
                ("profile", lambda batch=batch: collect_profile(teacher, [batch])),
            ]
            if (i + r) % 2:
                pair.reverse()
            for name, fn in pair:
                start = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - start
                if name == "plain":
                    t_plain += elapsed
                else:
                    t_profile += elapsed
            samples += int(batch["input_ids"].shape[0])
    return {
        "inference_samples_per_s": samples / t_plain,
        "analysis_samples_per_s": samples / t_profile,
        "analysis_vs_inference_throughput_ratio": t_plain / t_profile,
        "samples": samples,
    }


_MEMORY_CHILD = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
from benchmarks.common import label_names, load_clinc, teacher_from_packaged, tokenize_batches
from hf_spectralkd import collect_profile
names = label_names()
teacher, tok = teacher_from_packaged(len(names))
rows = load_clinc("train", limit={n}, seed=0)
batches = tokenize_batches(tok, rows, {{n: i for i, n in enumerate(names)}}, batch_size=32)
batches = [{{k: v for k, v in b.items() if k != "labels"}} for b in batches]
collect_profile(teacher, batches[:1])

def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(key + ":"))

with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak (VmHWM) to the current RSS: loading the model peaks higher than the analysis
before = status("VmRSS")
profile = collect_profile(teacher, batches)
peak = status("VmHWM")
print(json.dumps({{"samples": profile.num_samples, "rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024,
                  "peak_growth_mib": (peak - before) / 1024}}))
"""


def analysis_memory(base_samples=256, factors=(1, 4, 16), threads=None) -> list:
    """Peak RSS during ``collect_profile`` over 1x, 4x, 16x samples, each in a fresh Linux process: the peak
    (VmHWM) is reset after the model is loaded and read after the analysis. The batches are tokenized up front,
    so their (small) size grows with the sample count; the profile itself keeps only per-bin sums."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for factor in factors:
        n = base_samples * factor
        code = _MEMORY_CHILD.format(root=root, n=n)
        if threads:
            code = f"import torch; torch.set_num_threads({int(threads)})\n" + code
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        record["factor"] = factor
        out.append(record)
    return out


def cost_growth(lengths=(16, 64, 256), widths=(128, 384, 768), batch=32, layers=7, repeats=5) -> list:
    """Median time of ``spectral_intensity`` (``layers`` tensors) and of ``frequency_alignment_loss`` forward +
    backward (tokens axis, one pair) on random ``(batch, L, D)`` tensors."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    for length in lengths:
        for width in widths:
            hidden = [torch.randn(batch, length, width, generator=gen) for _ in range(layers)]
            mask = torch.ones(batch, length)
            mask[: batch // 2, length // 2 :] = 0
            s = torch.randn(batch, length, width, generator=gen, requires_grad=True)
            t = torch.randn(batch, length, width, generator=gen)
            t_int, t_loss = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                spectral_intensity(hidden, mask)
                t_int.append(time.perf_counter() - start)
                start = time.perf_counter()
                frequency_alignment_loss(s, t, mask).backward()
                t_loss.append(time.perf_counter() - start)
            rows.append(
                {
                    "seq_len": length,
                    "hidden": width,
                    "batch": batch,
                    "intensity_ms": 1000 * statistics.median(t_int),
                    "freq_loss_fwd_bwd_ms": 1000 * statistics.median(t_loss),
                }
            )
    base = rows[0]
    for row in rows:
        scale = (row["seq_len"] * row["hidden"]) / (base["seq_len"] * base["hidden"])
        row["elements_vs_smallest"] = scale
        row["intensity_vs_smallest"] = row["intensity_ms"] / base["intensity_ms"]
        row["freq_loss_vs_smallest"] = row["freq_loss_fwd_bwd_ms"] / base["freq_loss_fwd_bwd_ms"]
    return rows


def _print_table(result):
    print(f"\n{'method':<26}{'median ms':>11}{'p10':>9}{'p90':>9}{'samples/s':>11}{'x logit KD':>12}")
    for name, r in result["methods"].items():
        ratio = result["ratios_to_logit_kd"].get(name, float("nan"))
        print(
            f"{name:<26}{r['median_ms']:>11.1f}{r['p10_ms']:>9.1f}{r['p90_ms']:>9.1f}{r['samples_per_s']:>11.1f}{ratio:>12.3f}"
        )


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40, help="timed steps per method (after warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-textbrewer", action="store_true", help="skip the TextBrewer peer")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=BASE_METHODS + ["textbrewer"],
        help="methods to time (default: all, TextBrewer when installed); logit_kd is always added",
    )
    parser.add_argument("--skip-extras", action="store_true", help="only the step timings")
    parser.add_argument(
        "--only-extras",
        action="store_true",
        help="keep the step timings already in --output; (re)measure analysis throughput, memory and cost growth",
    )
    parser.add_argument(
        "--extras",
        nargs="+",
        default=["throughput", "memory", "growth"],
        choices=["throughput", "memory", "growth"],
        help="which extra measurements to run",
    )
    parser.add_argument(
        "--memory-base", type=int, default=256, help="samples of the 1x analysis-memory run (then 4x and 16x)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "speed.json"))
    parser.add_argument(
        "--teacher-base", default=None, help="teacher base model directory (default: the packaged MiniLM)"
    )
    parser.add_argument("--shared-machine", type=int, default=1, help="1 if other jobs ran on the machine meanwhile")
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    names = label_names()
    teacher, tokenizer = teacher_from_packaged(len(names), names, path=args.teacher_base)
    label2id = {n: i for i, n in enumerate(names)}
    rows = load_clinc("train", limit=32 * (args.steps + args.warmup), seed=0)
    batches = tokenize_batches(tokenizer, rows, label2id, batch_size=32, max_length=64)
    n_teacher = teacher.config.num_hidden_layers
    teacher_layers = uniform_layers(n_teacher, 3)
    if torch.cuda.is_available():
        teacher.cuda()
        batches = [{k: v.cuda() for k, v in b.items()} for b in batches]
    student = student_from_teacher(teacher, teacher_layers)
    result = {
        "machine": machine_info(bool(args.shared_machine)),
        "setup": {
            "teacher": "packaged MiniLM-L6 (6 blocks, hidden 384) + 150-label head",
            "student": "3 blocks copied from teacher layers " + str(teacher_layers),
            "data": "CLINC150 train, batch 32, dynamic padding, max_length 64",
            "alpha": ALPHA,
            "temperature": TAU,
            "beta": BETA,
            "optimizer": f"AdamW lr {LR}",
            "aligned_pairs": list(zip([1, 2, 3], teacher_layers, strict=True)),
            "mean_tokens_per_row": float(
                statistics.fmean(float(b["attention_mask"].sum()) / b["attention_mask"].shape[0] for b in batches)
            ),
        },
    }
    methods = list(BASE_METHODS)
    if args.methods:
        methods = ["logit_kd"] + [m for m in args.methods if m not in ("logit_kd", "textbrewer")]
        args.no_textbrewer = args.no_textbrewer or "textbrewer" not in args.methods
    textbrewer_note = None
    if args.only_extras:
        with open(args.output, encoding="utf-8") as handle:
            previous = json.load(handle)
        result = {**previous, "extras_machine": machine_info(bool(args.shared_machine))}
        methods = []
    if methods and not args.no_textbrewer:
        try:
            import textbrewer

            probe = _textbrewer_distiller(teacher, copy.deepcopy(student), [(1, 2)], tempfile.mkdtemp())
            probe.train_on_batch(batches[0], {"output_hidden_states": True})[0].backward()
            methods.append("textbrewer")
            result["setup"]["textbrewer_version"] = textbrewer.__version__
        except Exception as exc:  # record exactly why the peer could not run
            textbrewer_note = f"{type(exc).__name__}: {exc}"
    if methods:
        print(f"timing {methods} for {args.steps} steps (+{args.warmup} warm-up), alternating", flush=True)
        result["step_time"] = time_methods(
            teacher, student, batches, teacher_layers, methods=methods, steps=args.steps, warmup=args.warmup
        )
        result["textbrewer_note"] = textbrewer_note
        write_json(args.output, result)
    _print_table(result["step_time"])
    if not args.skip_extras:
        gc.collect()
        if "throughput" in args.extras:
            print("analysis throughput ...", flush=True)
            result["analysis_throughput"] = time_analysis(teacher, batches[:24])
            print(json.dumps(result["analysis_throughput"]), flush=True)
            write_json(args.output, result)
        if "memory" in args.extras:
            print("analysis memory ...", flush=True)
            result["analysis_memory"] = analysis_memory(args.memory_base, threads=args.threads)
            print(json.dumps(result["analysis_memory"]), flush=True)
            write_json(args.output, result)
        if "growth" in args.extras:
            print("cost growth ...", flush=True)
            result["cost_growth"] = cost_growth()
            for row in result["cost_growth"]:
                print(row, flush=True)
            write_json(args.output, result)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
