"""Collect ``benchmarks/results/*.json`` into ``summary.json``, ``tables.md`` and the tables of benchmarks/README.md.

    python benchmarks/summarize.py   # writes results/summary.json, results/tables.md and the generated part of
                                     # benchmarks/README.md (between the results:begin / results:end markers)

benchmarks/README.md is the one home of measured results: its prose is written by hand, its tables by this
script. Nothing outside the markers is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")
BENCHMARKS_README = os.path.join(ROOT, "benchmarks", "README.md")
RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"

SPEED_CMD = "python benchmarks/speed.py --steps 60 --shared-machine 0"
# an earlier one-thread re-run, made while the machine was shared; shown only beside a shared-machine speed.json
FOCUS_CMD = ("nice -n 5 python benchmarks/speed.py --threads 1 --methods logit_kd hidden_mse_kd spectralkd_tokens "
             "--steps 60 --skip-extras --output benchmarks/results/speed_focus_1thread.json")
# (key, label, file, command): the first one present is the headline `quality` of summary.json
QUALITY_FILES = [
    ("recipe_teacher_3ep", "teacher = the default recipe's fine-tuned MiniLM-L6 (3 epochs)", "quality_teacher3ep.json",
     "python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 --order seed "
     "--methods no_kd logit_kd spectralkd_topk hidden_mse_uniform spectralkd_ends spectralkd_beta1 "
     "--output benchmarks/results/quality_teacher3ep.json"),
    ("recipe_teacher_3ep_full_data",
     "teacher = the default recipe's fine-tuned MiniLM-L6 (3 epochs), full train split",
     "quality_teacher3ep_full.json",
     "python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --order seed "
     "--methods no_kd logit_kd spectralkd_topk hidden_mse_uniform "
     "--output benchmarks/results/quality_teacher3ep_full.json"),
    ("recipe_teacher", "teacher = the default recipe's fine-tuned MiniLM-L6 as it was then (2 epochs, "
     "`teacher.finetune.epochs=2`; runs before the RNG fix)", "quality_recipe_teacher.json",
     "nice -n 5 python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 --threads 1 "
     "--order seed --methods no_kd logit_kd spectralkd_topk spectralkd_topk_init_selected hidden_mse_uniform "
     "spectralkd_beta5 --output benchmarks/results/quality_recipe_teacher.json"),
    ("probe_teacher", "teacher = linear probe on the pretrained MiniLM-L6", "quality.json",
     "nice -n 5 python benchmarks/quality.py --teacher-mode probe --train-samples 2000 --threads 1 "
     "--methods no_kd logit_kd spectralkd_topk spectralkd_topk_init_selected hidden_mse_uniform"),
]
EXTRA_COMMANDS = {
    "recipe_teacher_3ep": "python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 "
                          "--order seed --methods spectralkd_topk_init_selected spectralkd_uniform "
                          "spectralkd_axis_hidden spectralkd_axis_tokens_hidden spectralkd_magnitude spectralkd_beta5 "
                          "textbrewer_hidden_mse --output benchmarks/results/quality_teacher3ep_extra.json",
    "recipe_teacher": "nice -n 5 python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher "
                      "--train-samples 2000 --threads 1 --order seed --methods spectralkd_uniform "
                      "spectralkd_magnitude spectralkd_axis_hidden logit_kd_init_selected spectralkd_ends "
                      "textbrewer_hidden_mse spectralkd_beta1 spectralkd_axis_tokens_hidden spectralkd_one_layer "
                      "--output benchmarks/results/quality_recipe_teacher_extra.json",
}
QUALITY_CMD = "; ".join(entry[3] for entry in QUALITY_FILES)


def load_result(name, results_dir=RESULTS_DIR):
    path = os.path.join(results_dir, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def collect(results_dir=RESULTS_DIR):
    """``(speed, quality_sets)`` from the result files; a quality set is ``(key, label, data, command)``."""
    speed = load_result("speed.json", results_dir)
    quality_sets = []
    for key, label, filename, command in QUALITY_FILES:
        data = load_result(filename, results_dir)
        # secondary methods, same teacher and budget, run alongside
        extra = load_result(filename.replace(".json", "_extra.json"), results_dir)
        if (data and extra and extra.get("methods") and extra["teacher"]["path"] == data["teacher"]["path"]
                and extra["budget"] == data["budget"]):
            data["methods"].update(extra["methods"])
            data.setdefault("method_specs", {}).update(extra.get("method_specs", {}))
            command += "; " + EXTRA_COMMANDS.get(key, "")
        if data and data.get("methods"):
            quality_sets.append((key, label, data, command))
    focus = load_result("speed_focus_1thread.json", results_dir)
    if speed and focus and speed["machine"].get("shared_machine"):
        speed["focus"] = focus["step_time"]
    return speed, quality_sets


def _speed_summary(speed) -> dict:
    ratios = speed["step_time"]["ratios_to_logit_kd"]
    methods = speed["step_time"]["methods"]
    out = {"spectral_vs_logit_kd_step_ratio": ratios.get("spectralkd_tokens"),
           "spectral_vs_logit_kd_step_ratio_by_axis": {k[len("spectralkd_"):]: v for k, v in ratios.items()
                                                       if k.startswith("spectralkd_")},
           "step_ratios_to_logit_kd": ratios}
    if "analysis_throughput" in speed:
        out["analysis_vs_inference_throughput_ratio"] = \
            speed["analysis_throughput"]["analysis_vs_inference_throughput_ratio"]
    if "analysis_memory" in speed:
        out["analysis_peak_rss_mib"] = {f"{r['factor']}x ({r['samples']} samples)": r["peak_rss_mib"]
                                        for r in speed["analysis_memory"]}
    if "textbrewer" in methods:
        out["textbrewer_step_ratio"] = methods["spectralkd_tokens"]["median_ms"] / methods["textbrewer"]["median_ms"]
    out["textbrewer_note"] = speed.get("textbrewer_note")
    out["speed_machine"] = speed["machine"]
    if speed.get("focus"):
        out["one_thread_step_ratios_to_logit_kd"] = speed["focus"]["ratios_to_logit_kd"]
    return out


def build_summary(speed, quality_sets) -> dict:
    summary = {"spectral_vs_logit_kd_step_ratio": None, "spectral_vs_logit_kd_step_ratio_by_axis": {},
               "analysis_vs_inference_throughput_ratio": None, "textbrewer_step_ratio": None, "textbrewer_note": None,
               "quality": {}, "quality_by_teacher": {}, "commands": {"speed": SPEED_CMD, "quality": QUALITY_CMD}}
    if speed:
        summary.update(_speed_summary(speed))
    for i, (key, label, data, command) in enumerate(quality_sets):
        block = {"teacher_label": label, "methods": {}}
        for name, m in data["methods"].items():
            block["methods"][name] = {k: m[k] for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean",
                                                        "macro_f1_std", "seeds")}
        block["teacher"] = {k: data["teacher"][k] for k in ("path", "source", "accuracy", "macro_f1", "intensity",
                                                            "topk_layers")}
        block["budget"] = data["budget"]
        block["machine"] = data["machine"]
        block["command"] = command
        summary["quality_by_teacher"][key] = block
        if i == 0:  # the first set is the headline one
            summary["quality"] = block["methods"]
            summary["quality_teacher"] = {"label": label, **block["teacher"]}
            summary["quality_budget"] = block["budget"]
    return summary


def _speed_tables(speed) -> list:
    m, steps = speed["machine"], speed["step_time"]
    out = [f"**Speed** ({m['date_utc'][:10]}, {m['cpu_count']}-core CPU, torch {m['torch']}, transformers "
           f"{m['transformers']}; machine shared with other jobs: {'yes' if m['shared_machine'] else 'no'}). "
           f"MiniLM-L6 teacher -> 3-layer student, CLINC150 batches of 32 (dynamic padding), methods alternated step "
           f"by step, median of {steps['steps']} steps after {steps['warmup']} warm-up. Command: `{SPEED_CMD}`.\n",
           "| method | median step (ms) | p10-p90 (ms) | samples/s | x logit KD |",
           "|---|---:|---:|---:|---:|"]
    for name, r in steps["methods"].items():
        out.append(f"| {name} | {r['median_ms']:.0f} | {r['p10_ms']:.0f}-{r['p90_ms']:.0f} | "
                   f"{r['samples_per_s']:.1f} | {steps['ratios_to_logit_kd'][name]:.3f} |")
    if speed.get("focus"):
        f = speed["focus"]
        out.append(f"\nRe-measured with one torch thread (less sensitive to the other jobs; {f['steps']} steps, "
                   "alternating): "
                   + ", ".join(f"{k} {v['median_ms']:.0f} ms ({f['ratios_to_logit_kd'][k]:.3f}x)"
                               for k, v in f["methods"].items())
                   + f". Command: `{FOCUS_CMD}`.")
    if speed.get("textbrewer_note"):
        out.append(f"\nTextBrewer could not run: `{speed['textbrewer_note']}`")
    if "analysis_throughput" in speed:
        a = speed["analysis_throughput"]
        out.append(f"\nAnalysis (`collect_profile`) {a['analysis_samples_per_s']:.1f} samples/s vs plain teacher "
                   f"inference with `output_hidden_states=True` {a['inference_samples_per_s']:.1f} samples/s: ratio "
                   f"**{a['analysis_vs_inference_throughput_ratio']:.3f}** (goal >= 0.9).")
    if "analysis_memory" in speed:
        out.append("\n| analysis samples | RSS before (MiB) | peak RSS during the analysis (MiB) | growth (MiB) |")
        out.append("|---:|---:|---:|---:|")
        for r in speed["analysis_memory"]:
            out.append(f"| {r['samples']} ({r['factor']}x) | {r.get('rss_before_mib', float('nan')):.0f} | "
                       f"{r['peak_rss_mib']:.0f} | {r['peak_growth_mib']:.1f} |")
    if "cost_growth" in speed:
        out.append("\n| seq len | hidden | spectral_intensity, 7 layers (ms) | frequency_alignment_loss fwd+bwd (ms) "
                   "| elements x | intensity x | loss x |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|")
        for r in speed["cost_growth"]:
            out.append(f"| {r['seq_len']} | {r['hidden']} | {r['intensity_ms']:.2f} | "
                       f"{r['freq_loss_fwd_bwd_ms']:.2f} | {r['elements_vs_smallest']:.0f} | "
                       f"{r['intensity_vs_smallest']:.1f} | {r['freq_loss_vs_smallest']:.1f} |")
    return out


def _method_label(name, spec) -> str:
    extras = []
    for key, default in (("fft_axis", "tokens"), ("variant", "complex"), ("beta", 0.2)):
        if spec.get(key) not in (None, default) and spec.get("beta", 0.2) > 0:
            extras.append(f"{key}={spec[key]}")
    return name + (f" ({', '.join(extras)})" if extras else "")


def _quality_table(set_label, quality, command) -> list:
    t, b, m = quality["teacher"], quality["budget"], quality["machine"]
    out = [f"\n**Quality, {set_label}** ({m['date_utc'][:10]}, {m['cpu_count']}-core CPU, shared: "
           f"{'yes' if m['shared_machine'] else 'no'}). CLINC150 test ({quality['test_samples']} rows). Teacher: "
           f"MiniLM-L6 ({t['source']}), test accuracy {t['accuracy']:.4f}, macro-F1 {t['macro_f1']:.4f}; layer "
           f"intensities {[round(v, 4) for v in t['intensity']]} (index 0 = embeddings), `topk` picks "
           f"{t['topk_layers']}, uniform is {t['uniform_layers']}. Same budget for every student: "
           f"{b['train_samples']} training rows (seeded subset), {b['epochs']:g} epoch, lr {b['learning_rate']:g}, "
           f"batch {b['batch_size']}; mean ± std over seeds. Command: `{command}`.\n",
           "| method | student init | aligned teacher layers | accuracy | macro-F1 | seeds |",
           "|---|---|---|---:|---:|---|"]
    specs = quality.get("method_specs", {})
    for name, r in quality["methods"].items():
        aligned = r.get("teacher_layers") or "-"
        out.append(f"| {_method_label(name, specs.get(name, {}))} | {r['init_layers']} | {aligned} | "
                   f"{r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} | "
                   f"{r['macro_f1_mean']:.4f} ± {r['macro_f1_std']:.4f} | {len(r['seeds'])} |")
    return out


def tables(speed, quality_sets) -> str:
    out = _speed_tables(speed) if speed else []
    for _key, set_label, quality, command in quality_sets:
        out.extend(_quality_table(set_label, quality, command))
    return "\n".join(out) + "\n"


def fill_between(path: str, start: str, end: str, text: str) -> None:
    """Replace what lies between the ``start`` and ``end`` marker lines of ``path`` (nothing else is touched)."""
    with open(path, encoding="utf-8") as handle:
        content = handle.read()
    if start not in content or end not in content:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(head + start + "\n" + text.rstrip() + "\n" + end + tail)


def generated_part(path: str = BENCHMARKS_README) -> str:
    """The text between the results markers of ``path``, as :func:`fill_between` writes it."""
    with open(path, encoding="utf-8") as handle:
        content = handle.read()
    return content.split(RESULTS_BEGIN, 1)[1].split(RESULTS_END, 1)[0].strip("\n") + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    from hf_spectralkd.utils import write_json  # the package is installed (editable) with the benchmarks

    speed, quality_sets = collect()
    write_json(os.path.join(RESULTS_DIR, "summary.json"), build_summary(speed, quality_sets), indent=1)
    md = tables(speed, quality_sets)
    with open(os.path.join(RESULTS_DIR, "tables.md"), "w", encoding="utf-8") as handle:
        handle.write(md)
    fill_between(BENCHMARKS_README, RESULTS_BEGIN, RESULTS_END, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
