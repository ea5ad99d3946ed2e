"""Collect ``benchmarks/results/{speed,quality}.json`` into ``summary.json`` and Markdown tables.

    python benchmarks/summarize.py            # writes results/summary.json and results/tables.md
    python benchmarks/summarize.py --readme   # also fills the README's benchmarks section with the tables
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import RESULTS_DIR, ROOT, write_json  # noqa: E402

SPEED_CMD = "python benchmarks/speed.py --steps 60 --shared-machine 0"
# an earlier one-thread re-run, made while the machine was shared; shown only beside a shared-machine speed.json
FOCUS_CMD = ("nice -n 5 python benchmarks/speed.py --threads 1 --methods logit_kd hidden_mse_kd spectralkd_tokens --steps 60 "
             "--skip-extras --output benchmarks/results/speed_focus_1thread.json")
# (key, label, file, command): the first one present is the headline `quality` of summary.json
QUALITY_FILES = [
    ("recipe_teacher_3ep", "teacher = the default recipe's fine-tuned MiniLM-L6 (3 epochs)", "quality_teacher3ep.json",
     "python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 --order seed "
     "--methods no_kd logit_kd spectralkd_topk hidden_mse_uniform spectralkd_ends spectralkd_beta1 "
     "--output benchmarks/results/quality_teacher3ep.json"),
    ("recipe_teacher_3ep_full_data", "teacher = the default recipe's fine-tuned MiniLM-L6 (3 epochs), full train split",
     "quality_teacher3ep_full.json",
     "python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --order seed "
     "--methods no_kd logit_kd spectralkd_topk hidden_mse_uniform --output benchmarks/results/quality_teacher3ep_full.json"),
    ("recipe_teacher", "teacher = the default recipe's fine-tuned MiniLM-L6 as it was then (2 epochs, "
     "`teacher.finetune.epochs=2`; runs before the RNG fix)", "quality_recipe_teacher.json",
     "nice -n 5 python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 --threads 1 --order seed "
     "--methods no_kd logit_kd spectralkd_topk spectralkd_topk_init_selected hidden_mse_uniform spectralkd_beta5 "
     "--output benchmarks/results/quality_recipe_teacher.json"),
    ("probe_teacher", "teacher = linear probe on the pretrained MiniLM-L6", "quality.json",
     "nice -n 5 python benchmarks/quality.py --teacher-mode probe --train-samples 2000 --threads 1 "
     "--methods no_kd logit_kd spectralkd_topk spectralkd_topk_init_selected hidden_mse_uniform"),
]
EXTRA_COMMANDS = {
    "recipe_teacher_3ep": "python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 --order seed "
                          "--methods spectralkd_topk_init_selected spectralkd_uniform spectralkd_axis_hidden "
                          "spectralkd_axis_tokens_hidden spectralkd_magnitude spectralkd_beta5 textbrewer_hidden_mse "
                          "--output benchmarks/results/quality_teacher3ep_extra.json",
    "recipe_teacher": "nice -n 5 python benchmarks/quality.py --teacher runs/clinc150_minilm/teacher --train-samples 2000 --threads 1 "
                      "--order seed --methods spectralkd_uniform spectralkd_magnitude spectralkd_axis_hidden logit_kd_init_selected "
                      "spectralkd_ends textbrewer_hidden_mse spectralkd_beta1 spectralkd_axis_tokens_hidden spectralkd_one_layer "
                      "--output benchmarks/results/quality_recipe_teacher_extra.json",
}
QUALITY_CMD = "; ".join(entry[3] for entry in QUALITY_FILES)


def _load(name):
    path = os.path.join(RESULTS_DIR, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def build_summary(speed, quality_sets) -> dict:
    summary = {"spectral_vs_logit_kd_step_ratio": None, "spectral_vs_logit_kd_step_ratio_by_axis": {},
               "analysis_vs_inference_throughput_ratio": None, "textbrewer_step_ratio": None, "textbrewer_note": None,
               "quality": {}, "quality_by_teacher": {}, "commands": {"speed": SPEED_CMD, "quality": QUALITY_CMD}}
    if speed:
        ratios = speed["step_time"]["ratios_to_logit_kd"]
        methods = speed["step_time"]["methods"]
        summary["spectral_vs_logit_kd_step_ratio"] = ratios.get("spectralkd_tokens")
        summary["spectral_vs_logit_kd_step_ratio_by_axis"] = {k[len("spectralkd_"):]: v for k, v in ratios.items() if k.startswith("spectralkd_")}
        summary["step_ratios_to_logit_kd"] = ratios
        if "analysis_throughput" in speed:
            summary["analysis_vs_inference_throughput_ratio"] = speed["analysis_throughput"]["analysis_vs_inference_throughput_ratio"]
        if "analysis_memory" in speed:
            summary["analysis_peak_rss_mib"] = {f"{r['factor']}x ({r['samples']} samples)": r["peak_rss_mib"] for r in speed["analysis_memory"]}
        if "textbrewer" in methods:
            summary["textbrewer_step_ratio"] = methods["spectralkd_tokens"]["median_ms"] / methods["textbrewer"]["median_ms"]
        summary["textbrewer_note"] = speed.get("textbrewer_note")
        summary["speed_machine"] = speed["machine"]
        if speed.get("focus"):
            summary["one_thread_step_ratios_to_logit_kd"] = speed["focus"]["ratios_to_logit_kd"]
    for i, (key, label, data, command) in enumerate(quality_sets):
        block = {"teacher_label": label, "methods": {}}
        for name, m in data["methods"].items():
            block["methods"][name] = {k: m[k] for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "seeds")}
        block["teacher"] = {k: data["teacher"][k] for k in ("path", "source", "accuracy", "macro_f1", "intensity", "topk_layers")}
        block["budget"] = data["budget"]
        block["machine"] = data["machine"]
        block["command"] = command
        summary["quality_by_teacher"][key] = block
        if i == 0:  # the first set is the headline one
            summary["quality"] = block["methods"]
            summary["quality_teacher"] = {"label": label, **block["teacher"]}
            summary["quality_budget"] = block["budget"]
    return summary


def tables(speed, quality_sets) -> str:
    out = []
    if speed:
        m = speed["machine"]
        out.append(f"**Speed** ({m['date_utc'][:10]}, {m['cpu_count']}-core CPU, torch {m['torch']}, transformers {m['transformers']}; "
                   f"machine shared with other jobs: {'yes' if m['shared_machine'] else 'no'}). MiniLM-L6 teacher -> 3-layer student, "
                   f"CLINC150 batches of 32 (dynamic padding), methods alternated step by step, median of "
                   f"{speed['step_time']['steps']} steps after {speed['step_time']['warmup']} warm-up. Command: `{SPEED_CMD}`.\n")
        out.append("| method | median step (ms) | p10-p90 (ms) | samples/s | x logit KD |")
        out.append("|---|---:|---:|---:|---:|")
        for name, r in speed["step_time"]["methods"].items():
            out.append(f"| {name} | {r['median_ms']:.0f} | {r['p10_ms']:.0f}-{r['p90_ms']:.0f} | {r['samples_per_s']:.1f} | "
                       f"{speed['step_time']['ratios_to_logit_kd'][name]:.3f} |")
        if speed.get("focus"):
            f = speed["focus"]
            out.append(f"\nRe-measured with one torch thread (less sensitive to the other jobs; {f['steps']} steps, alternating): "
                       + ", ".join(f"{k} {v['median_ms']:.0f} ms ({f['ratios_to_logit_kd'][k]:.3f}x)" for k, v in f["methods"].items())
                       + f". Command: `{FOCUS_CMD}`.")
        if speed.get("textbrewer_note"):
            out.append(f"\nTextBrewer could not run: `{speed['textbrewer_note']}`")
        if "analysis_throughput" in speed:
            a = speed["analysis_throughput"]
            out.append(f"\nAnalysis (`collect_profile`) {a['analysis_samples_per_s']:.1f} samples/s vs plain teacher inference with "
                       f"`output_hidden_states=True` {a['inference_samples_per_s']:.1f} samples/s: ratio "
                       f"**{a['analysis_vs_inference_throughput_ratio']:.3f}** (goal >= 0.9).")
        if "analysis_memory" in speed:
            out.append("\n| analysis samples | RSS before (MiB) | peak RSS during the analysis (MiB) | growth (MiB) |")
            out.append("|---:|---:|---:|---:|")
            for r in speed["analysis_memory"]:
                out.append(f"| {r['samples']} ({r['factor']}x) | {r.get('rss_before_mib', float('nan')):.0f} | {r['peak_rss_mib']:.0f} | "
                           f"{r['peak_growth_mib']:.1f} |")
        if "cost_growth" in speed:
            out.append("\n| seq len | hidden | spectral_intensity, 7 layers (ms) | frequency_alignment_loss fwd+bwd (ms) | elements x | intensity x | loss x |")
            out.append("|---:|---:|---:|---:|---:|---:|---:|")
            for r in speed["cost_growth"]:
                out.append(f"| {r['seq_len']} | {r['hidden']} | {r['intensity_ms']:.2f} | {r['freq_loss_fwd_bwd_ms']:.2f} | "
                           f"{r['elements_vs_smallest']:.0f} | {r['intensity_vs_smallest']:.1f} | {r['freq_loss_vs_smallest']:.1f} |")
    for _key, set_label, quality, command in quality_sets:
        t, b, m = quality["teacher"], quality["budget"], quality["machine"]
        out.append(f"\n**Quality, {set_label}** ({m['date_utc'][:10]}, {m['cpu_count']}-core CPU, shared: {'yes' if m['shared_machine'] else 'no'}). "
                   f"CLINC150 test ({quality['test_samples']} rows). Teacher: MiniLM-L6 ({t['source']}), test accuracy "
                   f"{t['accuracy']:.4f}, macro-F1 {t['macro_f1']:.4f}; layer intensities "
                   f"{[round(v, 4) for v in t['intensity']]} (index 0 = embeddings), `topk` picks {t['topk_layers']}, uniform is "
                   f"{t['uniform_layers']}. Same budget for every student: {b['train_samples']} training rows (seeded subset), "
                   f"{b['epochs']:g} epoch, lr {b['learning_rate']:g}, batch {b['batch_size']}; mean ± std over seeds. "
                   f"Command: `{command}`.\n")
        out.append("| method | student init | aligned teacher layers | accuracy | macro-F1 | seeds |")
        out.append("|---|---|---|---:|---:|---|")
        specs = quality.get("method_specs", {})
        for name, r in quality["methods"].items():
            spec = specs.get(name, {})
            aligned = r.get("teacher_layers") or "-"
            extras = []
            for key, default in (("fft_axis", "tokens"), ("variant", "complex"), ("beta", 0.2)):
                if spec.get(key) not in (None, default) and spec.get("beta", 0.2) > 0:
                    extras.append(f"{key}={spec[key]}")
            label = name + (f" ({', '.join(extras)})" if extras else "")
            out.append(f"| {label} | {r['init_layers']} | {aligned} | {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} | "
                       f"{r['macro_f1_mean']:.4f} ± {r['macro_f1_std']:.4f} | {len(r['seeds'])} |")
    return "\n".join(out) + "\n"


def fill_between(path: str, start: str, end: str, text: str) -> None:
    """Replace what lies between the ``start`` and ``end`` marker lines of ``path`` (nothing else is touched)."""
    with open(path, encoding="utf-8") as handle:
        readme = handle.read()
    if start not in readme or end not in readme:
        raise ValueError(f"{path} has no {start} ... {end} markers")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(head + start + "\n" + text.rstrip() + "\n" + end + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", action="store_true",
                        help="also fill the README benchmarks section from benchmarks/README_section.md ({{tables}} = the tables)")
    args = parser.parse_args(argv)
    speed = _load("speed.json")
    quality_sets = []
    for key, label, filename, command in QUALITY_FILES:
        data = _load(filename)
        extra = _load(filename.replace(".json", "_extra.json"))  # secondary methods, same teacher and budget, run alongside
        if data and extra and extra.get("methods") and extra["teacher"]["path"] == data["teacher"]["path"] and extra["budget"] == data["budget"]:
            data["methods"].update(extra["methods"])
            data.setdefault("method_specs", {}).update(extra.get("method_specs", {}))
            command += "; " + EXTRA_COMMANDS.get(key, "")
        if data and data.get("methods"):
            quality_sets.append((key, label, data, command))
    focus = _load("speed_focus_1thread.json")
    if speed and focus and speed["machine"].get("shared_machine"):
        speed["focus"] = focus["step_time"]
    summary = build_summary(speed, quality_sets)
    write_json(os.path.join(RESULTS_DIR, "summary.json"), summary)
    md = tables(speed, quality_sets)
    with open(os.path.join(RESULTS_DIR, "tables.md"), "w", encoding="utf-8") as handle:
        handle.write(md)
    bench_readme = os.path.join(ROOT, "benchmarks", "README.md")
    if os.path.isfile(bench_readme):
        fill_between(bench_readme, "<!-- results:begin -->", "<!-- results:end -->", md)
    if args.readme:
        with open(os.path.join(ROOT, "benchmarks", "README_section.md"), encoding="utf-8") as handle:
            section = handle.read()
        fill_between(os.path.join(ROOT, "README.md"), "<!-- section:benchmarks -->", "<!-- /section:benchmarks -->",
                     "## Benchmarks\n\n" + section.replace("{{tables}}", md))
        if os.path.isfile(bench_readme):
            fill_between(bench_readme, "<!-- findings:begin -->", "<!-- findings:end -->",
                         section.replace("{{tables}}", "(tables above)"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
