"""The run's report: the results dictionary (the ``results.json`` format) and its markdown summary table."""

from __future__ import annotations

import dataclasses
import datetime
import time

from ..metrics import metric_label, task_metrics
from ..paper import method_name

__all__ = ["results_dict", "summary_markdown", "recommendation", "quality_warnings", "TIMING_KEYS",
           "DISTILLATION_KEYS", "TRAINING_KEYS"]

# results.json's timings_s key of each stage that is run or reused
TIMING_KEYS = {"teacher": "teacher_finetune", "analysis": "analysis", "student": "distill", "baseline": "baseline"}
DISTILLATION_KEYS = ("alpha", "temperature", "beta", "alignment", "projection", "alignment_phase", "fft_axis",
                     "freq_loss_variant", "freq_loss_normalize", "freq_bins", "gate_teacher_errors", "layer_selection",
                     "selection_samples")
STUDENT_BELOW_BASELINE_PT = 0.5  # a distilled student this far below its no-KD baseline is reported
RECOMMENDED_LABELS = {"student": "the distilled student", "baseline": "the no-KD student (baseline)"}
TASK_PACKAGES = {"token-classification": ("seqeval",)}  # a task's own packages, in results.json's versions
TRAINING_KEYS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "seed",
                 "gradient_accumulation_steps")


def _timings(run) -> dict:
    timings = dict.fromkeys((*TIMING_KEYS.values(), "evaluate"), 0.0)
    for stage in run.stages:
        timings[TIMING_KEYS[stage.name]] = stage.seconds
    timings["evaluate"] = round(run.eval_seconds, 2)
    timings["total"] = round(time.time() - run.started, 2)
    return timings


def results_dict(run, models: dict, baseline: dict | None, layer_map, profile,
                 recommended: dict | None = None, student=None):
    """The :class:`~hf_spectralkd.results.RunResults` of a finished run: ``models`` holds the ``teacher`` and
    ``student`` sections; ``profile``, the teacher's spectral profile (intensity and entropy per layer);
    ``recommended`` (the model to use, chosen on the validation split, see :func:`recommendation`) is left out when
    None; ``student`` (the student stage's :class:`~.stages.Student`) gives the chosen candidate's settings and the
    ``candidates`` records."""
    from ..results import RunResults, package_versions
    from ..tasks.sources import data_warnings

    plan = run.plan
    recipe = plan.recipe
    args = student.args if student is not None else plan.distill_args
    intensity = [float(v) for v in profile.intensity]
    entropy = [float(v) for v in profile.entropy] if profile.entropy is not None else None
    return RunResults.from_dict({
        "recipe": recipe.path,
        "recipe_name": recipe.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "task": recipe.task,
        "eval_split": plan.eval_split,
        "smoke": recipe.smoke,
        "dataset": {**plan.data.info, "splits": {k: len(v) for k, v in run.datasets.items()},
                    "label_names": plan.label_names},
        "teacher": models["teacher"],
        "student": models["student"],
        "baseline": baseline,
        **({"recommended": recommended} if recommended else {}),
        "layer_map": {"teacher_layers": layer_map.teacher_layers, "student_layers": layer_map.student_layers,
                      "strategy": layer_map.strategy, "teacher_intensity": layer_map.teacher_intensity or intensity,
                      "teacher_entropy": layer_map.teacher_entropy or entropy},
        **({"candidates": student.candidates} if student is not None and student.candidates else {}),
        "distillation": {k: getattr(args, k) for k in DISTILLATION_KEYS},
        "method": method_name({"beta": args.beta, "alignment": args.alignment}),  # logit KD when beta is 0
        "training": {
            **{k: getattr(args, k) for k in TRAINING_KEYS},
            "teacher_finetune": dataclasses.asdict(recipe.teacher.finetune) if recipe.teacher.finetune else None,
            **{k: v for k, v in plan.training_values.items() if k in recipe.training},
        },
        "timings_s": _timings(run),
        "reused_stages": [stage.name for stage in run.stages if stage.reused],
        "versions": package_versions(vision=recipe.task == "image-classification",
                                     extra=TASK_PACKAGES.get(recipe.task, ())),
        "output_dir": plan.out,
        "hub": dataclasses.asdict(recipe.hub),
        "warnings": data_warnings(plan.data.info)
        + quality_warnings(models, baseline, plan.eval_split, recommended, plan.task.primary_metric),
    })


def recommendation(student_accuracy: float, baseline_accuracy: float, margin: float, student_path: str,
                   baseline_path: str, split: str = "validation", metric: str = "accuracy") -> dict:
    """Which student to use, from the task's primary ``metric`` (fractions, as in ``metrics``: accuracy, or entity
    F1 for token classification) of the distilled student and the no-KD baseline on ``split``: the baseline when it
    leads by more than ``margin`` points, otherwise the distilled student (a tie or a lead within the margin keeps
    it). results.json's ``recommended`` section: ``student_<metric>`` / ``baseline_<metric>``, and ``metric`` when it
    is not accuracy."""
    student, baseline = 100 * student_accuracy, 100 * baseline_accuracy
    lead = round(baseline - student, 6)  # points; rounded so that a lead of exactly the margin is not above it
    named = "" if metric == "accuracy" else f"{metric_label(metric)} "  # accuracy: the sentence as it always was
    if lead > margin:
        model, path = "baseline", baseline_path
        reason = (f"on the {split} split it scored {named}{baseline:.2f}% vs {student:.2f}% for the distilled student "
                  f"({lead:.2f} pt ahead, more than evaluation.recommend_margin {margin:g} pt); distillation did not "
                  "help here")
    else:
        model, path = "student", student_path
        scored = f"on the {split} split it scored {named}{student:.2f}% vs {baseline:.2f}% for the no-KD student"
        if lead < 0:
            reason = f"{scored}; distillation helped ({-lead:.2f} pt)"
        elif lead == 0:
            reason = f"{scored}; a tie keeps the distilled student"
        else:
            reason = (f"{scored}; the no-KD student's lead of {lead:.2f} pt is within evaluation.recommend_margin "
                      f"({margin:g} pt)")
    return {"model": model, "path": path, "split": split, **({} if metric == "accuracy" else {"metric": metric}),
            f"student_{metric}": student_accuracy, f"baseline_{metric}": baseline_accuracy, "reason": reason}


def _which_to_use(split: str, recommended: dict | None) -> str:
    """Where a quality warning sends the reader for the choice of model, given the split it was measured on."""
    if not recommended:
        return f"choose between them on a validation split, not on these {split} numbers"
    where = "'recommended' in results.json, the 'Use:' line of summary.md"
    if split == recommended["split"]:
        return f"use the model recommended on this split ({where})"
    return (f"do not choose on the {split} split: use the model recommended on the {recommended['split']} split "
            f"({where})")


def quality_warnings(models: dict, baseline: dict | None, split: str, recommended: dict | None = None,
                     metric: str = "accuracy") -> list:
    """Plain-language warnings when the run did not give what distillation is for: a teacher no better than the
    student trained without it, or a distilled student below that no-KD student, measured on ``split`` (the
    evaluation split) by the task's primary ``metric``; each points to the model ``recommended`` on the validation
    split."""
    if not baseline:
        return []
    accuracy = {role: 100 * section["metrics"][metric] for role, section in
                (("teacher", models["teacher"]), ("student", models["student"]), ("baseline", baseline))}
    warnings = []
    if accuracy["teacher"] <= accuracy["baseline"]:
        warnings.append(
            f"the teacher ({accuracy['teacher']:.2f}%) is not better than the student trained without it "
            f"({accuracy['baseline']:.2f}%) on the {split} split: distillation cannot be expected to help. Train a "
            f"stronger teacher (more teacher.finetune.epochs, a larger base); {_which_to_use(split, recommended)}")
    gap = accuracy["baseline"] - accuracy["student"]
    if gap > STUDENT_BELOW_BASELINE_PT:
        warnings.append(
            f"the distilled student ({accuracy['student']:.2f}%) is {gap:.2f} pt below the no-KD student "
            f"({accuracy['baseline']:.2f}%) on the {split} split: train a stronger teacher or lower "
            f"distillation.alpha (benchmarks/README.md says when KD pays); {_which_to_use(split, recommended)}")
    return warnings


def summary_markdown(results: dict) -> str:
    """The summary table (markdown) of a results dictionary."""

    keys = task_metrics(results.get("task"))  # the task's metrics: accuracy and macro-F1, or F1/P/R/accuracy

    def row(role, section):
        if not section:
            return None
        m = section["metrics"]
        params = section.get("num_parameters") or 0
        cells = " | ".join(f"{100 * m[key]:.2f}" for key in keys)
        return (f"| {role} | {section.get('num_layers')} | {params / 1e6:.1f}M | {cells} | "
                f"{section.get('throughput_samples_per_s', 0):.0f} |")

    split = results["eval_split"]
    headers = " | ".join(f"{metric_label(key)} %" for key in keys)
    lines = [
        f"## {results['recipe_name']}: {results['dataset'].get('name')} ({split} split, "
        f"{results['dataset']['splits'].get(split)} examples){' [smoke run]' if results.get('smoke') else ''}",
        "",
        f"| model | layers | parameters | {headers} | samples/s |",
        "|---|---|---|" + "---|" * len(keys) + "---|",
    ]
    student = results["student"]
    init = f"{student['init']} {student.get('init_layers') or ''}".rstrip()
    student_label = f"{method_name(results.get('distillation'))} student (init {init})"
    for role, section in (("teacher", results["teacher"]), ("no-KD student (baseline)", results.get("baseline")),
                          (student_label, student)):
        line = row(role, section)
        if line:
            lines.append(line)
    lm = results["layer_map"]
    reused = f" (reused: {', '.join(results['reused_stages'])})" if results.get("reused_stages") else ""
    lines += [
        "",
        f"Aligned layers (teacher -> student): {lm['teacher_layers']} -> {lm['student_layers']} "
        f"(strategy {lm['strategy']}).",
        "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_s"].items()) + reused,
        "",
    ]
    if results.get("candidates"):  # distillation.candidates: each one's validation score, the kept one marked
        from ..metrics import primary_metric

        metric = primary_metric(results.get("task"))  # what the candidates were chosen by
        cells = [f"{c['name']} {100 * c['metrics'][metric]:.2f}{' (kept)' if c['chosen'] else ''}"
                 for c in results["candidates"]]
        lines += [f"Candidates (validation {metric} %): " + "; ".join(cells) + ".", ""]
    recommended = results.get("recommended")
    if recommended:
        lines += [f"**Use:** {RECOMMENDED_LABELS[recommended['model']]} in {recommended['path']} — "
                  f"{recommended['reason']}", ""]
    lines += [f"**Warning:** {warning}" for warning in results.get("warnings") or []]
    if results.get("warnings"):
        lines.append("")
    return "\n".join(lines)
