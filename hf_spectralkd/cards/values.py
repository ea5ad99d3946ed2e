"""The values a model card shows, computed from a results dict; ``templates/model_card.md.jinja`` holds the
sentences. Numbers arrive formatted (``"0.7500"``, ``"12,345"``, ``"n/a"``); a section builder per card section."""

from __future__ import annotations

import json
import os

from ..loading import PACKAGED_SOURCES, hub_model_id, is_hub_id
from ..paper import PAPER, method_name
from ..results import package_versions, read_log_history

__all__ = ["METRIC_INFO", "TASK_NAMES", "card_values", "dataset_hub_id", "display_path",
           "metric_info", "metrics_of"]

METRIC_INFO = {  # results key -> (model-index metric type, pretty name, metric args)
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "f1": ("f1", "F1", None),
    "top5_accuracy": ("accuracy", "Top-5 accuracy", {"top_k": 5}),
    "precision": ("precision", "Precision", None),
    "recall": ("recall", "Recall", None),
}
# how a task's metrics are named where the generic name would mislead (token classification: entity-level seqeval
# scores and a per-token accuracy)
TASK_METRIC_INFO = {"token-classification": {
    "f1": ("f1", "Entity F1", None),
    "precision": ("precision", "Entity precision", None),
    "recall": ("recall", "Entity recall", None),
    "accuracy": ("accuracy", "Token accuracy", None),
}}
TASK_NAMES = {"text-classification": "Text Classification", "image-classification": "Image Classification",
              "token-classification": "Token Classification"}  # the model-index task names
USAGE_EXAMPLES = {"token-classification": "i want to fly from boston to denver tomorrow morning"}
# the distillation hyper-parameters the template explains, in table order (others follow, unexplained)
DISTILLATION_ORDER = (
    "alpha", "temperature", "beta", "layer_selection", "selection_samples", "fft_axis", "freq_loss_variant",
)
LOG_TABLE_ROWS = 20


# ----------------------------------------------------------------------------------------------- formatting
def display_path(path):
    """Paths as a card shows them: relative to the current directory when inside it (no machine-specific prefix)."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def fmt_int(value) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else "n/a"


def fmt_float(value, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) else "n/a"


def fmt_value(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items() if v is not None) or "n/a"
    return str(value)


def metric_info(key: str, task: str | None = None) -> tuple:
    """``(model-index metric type, pretty name, metric args)`` of the results metric ``key`` of ``task``."""
    return TASK_METRIC_INFO.get(task or "", {}).get(key) or METRIC_INFO.get(key, (key, key.replace("_", " "), None))


def metrics_of(entry: dict | None) -> dict:
    return dict((entry or {}).get("metrics") or {})


def dataset_hub_id(dataset: dict) -> str | None:
    """The Hub id of the data a run read: its Hub source, or the one its data folder's card names (``hub_id``, see
    :func:`hf_spectralkd.tasks.sources.data_card_facts`); never guessed from a dataset's name."""
    for key in ("hub_id", "source"):
        if is_hub_id(dataset.get(key)):
            return dataset[key]
    return None


def _shown(entry: dict | None) -> dict:
    """A model section with its paths as the card shows them."""
    return {k: (display_path(v) if k in ("source", "path") else v) for k, v in (entry or {}).items()}


# ----------------------------------------------------------------------------------------------- sections
def model_values(entry: dict, vision: bool) -> dict:
    """What the template's ``model_display`` macro needs to name a model (Hub link, timm name, local path)."""
    source = entry.get("source")
    return {
        "hub": hub_model_id(source, vision), "vision": vision, "source": source, "path": entry.get("path"),
        "packaged": PACKAGED_SOURCES.get(source) if isinstance(source, str) else None,
        "num_layers": fmt_value(entry.get("num_layers")),
    }


def dataset_values(results: dict) -> dict:
    dataset = dict(results.get("dataset") or {})
    dataset["source"] = display_path(dataset.get("source"))
    citation = (dataset.get("citation") or "").strip() or None
    splits = dataset.get("splits") or {}
    return {
        "name": dataset.get("name") or "an unnamed dataset",
        "source": dataset.get("source"),
        "hub_id": dataset_hub_id(dataset),
        "source_is_hub": is_hub_id(dataset.get("source")),
        "license": dataset.get("license"),
        "citation": citation,
        "citation_is_bibtex": bool(citation and citation.startswith("@")),
        "splits": splits,
        "eval_size": splits.get(results.get("eval_split") or "test"),
        # the labelled training rows: the teacher and the no-KD baseline learned from these, the cross-entropy term too
        "train_size": fmt_int(dataset.get("labelled_train_rows", splits.get("train")))
        if dataset.get("labelled_train_rows", splits.get("train")) is not None else None,
        "transfer_size": fmt_int(dataset["transfer_rows"]) if dataset.get("transfer_rows") else None,
        "augmented_size": fmt_int(dataset["augmented_rows"]) if dataset.get("augmented_rows") else None,
    }


def size_values(teacher: dict, student: dict, baseline: dict | None) -> dict:
    """The size table's rows, the measured speed-up and the parameter ratio."""

    def row(kind, entry, path):
        return {
            "kind": kind, "path": path,
            "num_layers": fmt_value(entry.get("num_layers")), "hidden_size": fmt_value(entry.get("hidden_size")),
            "num_parameters": fmt_int(entry.get("num_parameters")),
            "throughput": fmt_float(entry.get("throughput_samples_per_s"), 1),
        }

    rows = [row("teacher", teacher, None), row("student", student, None)]
    if baseline:
        rows.append(row("baseline", baseline, baseline.get("path")))
    speedup = size_ratio = None
    t_tp, s_tp = teacher.get("throughput_samples_per_s"), student.get("throughput_samples_per_s")
    if isinstance(t_tp, (int, float)) and isinstance(s_tp, (int, float)) and t_tp > 0:
        speedup = {"ratio": f"{s_tp / t_tp:.2f}", "student": f"{s_tp:.1f}", "teacher": f"{t_tp:.1f}"}
    t_p, s_p = teacher.get("num_parameters"), student.get("num_parameters")
    if isinstance(t_p, (int, float)) and isinstance(s_p, (int, float)) and s_p > 0:
        size_ratio = {"ratio": f"{t_p / s_p:.2f}", "share": f"{s_p / t_p:.1%}"}
    init = {
        "kind": student.get("init"), "layers": fmt_value(student.get("init_layers")), "source": student.get("source"),
    }
    return {"size_rows": rows, "speedup": speedup, "size_ratio": size_ratio, "student_init": init}


def layer_map_values(layer_map: dict | None) -> dict:
    layer_map = layer_map or {}
    t_layers = list(layer_map.get("teacher_layers") or [])
    s_layers = list(layer_map.get("student_layers") or [])
    intensity = layer_map.get("teacher_intensity")
    entropy = layer_map.get("teacher_entropy")
    if len(t_layers) != len(s_layers):
        raise ValueError(
            f"results layer_map: teacher_layers {t_layers} and student_layers {s_layers} differ in length "
            "(each student layer is aligned with one teacher layer)"
        )

    def shown(values, t, digits):
        return fmt_float(values[t], digits) if values and 0 <= t < len(values) else "n/a"

    cells = None
    if intensity:
        # the norm-free spectral entropy beside the intensity (docs/method.md, "What spectral intensity measures")
        cells = [{"index": i, "value": f"{v:.5f}", "entropy": shown(entropy, i, 4), "chosen": i in t_layers}
                 for i, v in enumerate(intensity)]
    return {
        "pairs": [
            {"student": s, "teacher": t, "intensity": shown(intensity, t, 5), "entropy": shown(entropy, t, 4)}
            for s, t in zip(s_layers, t_layers, strict=True)
        ],
        "strategy": layer_map.get("strategy") or "n/a",
        "intensity": cells,
        "has_entropy": bool(entropy),
    }


def candidate_values(results: dict) -> dict:
    """The ``distillation.candidates`` table: each candidate's overrides, validation primary metric and training
    time, the chosen one marked; None without candidates."""
    from ..metrics import task_metrics

    candidates = results.get("candidates") or []
    if not candidates:
        return {"candidates": None}
    task = results.get("task")
    metric = (task_metrics(task) or ["accuracy"])[0]
    rows = [{"name": c.get("name"), "value": fmt_float((c.get("metrics") or {}).get(metric)),
             "seconds": fmt_float(c.get("train_seconds"), 0), "chosen": bool(c.get("chosen"))} for c in candidates]
    return {"candidates": {"metric": metric_info(metric, task)[1], "rows": rows}}


def teacher_budget_values(results: dict) -> dict:
    """Whether the teacher's fine-tuning stopped because its budget ran out while validation still improved
    (results.json's ``teacher.finetune_stop``): the card then says that a longer budget may give a better teacher."""
    stop = ((results.get("teacher") or {}).get("finetune_stop")) or {}
    if stop.get("reason") != "budget":
        return {"teacher_budget": None}
    return {"teacher_budget": {"epochs": fmt_value(stop.get("epochs")),
                               "best_epoch": fmt_value(stop.get("best_epoch"))}}


def distillation_rows(distillation: dict | None) -> list:
    distillation = distillation or {}
    keys = [k for k in DISTILLATION_ORDER if k in distillation]
    keys += [k for k in distillation if k not in DISTILLATION_ORDER]
    return [{"key": k, "value": fmt_value(distillation[k])} for k in keys]


def metric_keys(results: dict) -> list:
    """The metrics of the results table: the task's own in its order (see ``metrics.task_metrics``), then the rest
    in METRIC_INFO's order, then any other."""
    from ..metrics import task_metrics

    keys = []
    for role in ("teacher", "baseline", "student"):
        for key in metrics_of(results.get(role)):
            if key not in keys:
                keys.append(key)
    order = list(dict.fromkeys([*task_metrics(results.get("task")), *METRIC_INFO]))
    return [k for k in order if k in keys] + [k for k in keys if k not in order]


def result_values(results: dict) -> dict:
    task = results.get("task")
    keys = metric_keys(results)
    rows = []
    for role in ("teacher", "baseline", "student"):
        if results.get(role) and keys:
            metrics = metrics_of(results[role])
            rows.append({"role": role, "cells": [fmt_float(metrics.get(k)) for k in keys]})
    headers = [metric_info(k, task)[1] for k in keys]
    return {
        "metric_headers": headers or ["(no metrics)"],
        "result_rows": rows,
        "no_metrics": not keys,
        "no_baseline": bool(keys) and not results.get("baseline"),
        "teacher_not_evaluated": bool(keys) and not metrics_of(results.get("teacher")),
    }


def recommendation_values(results: dict) -> dict:
    """The run's choice between the distilled student and the no-KD baseline (results.json's ``recommended``,
    made on the validation split), as the card states it; None when the run made no choice."""
    rec = results.get("recommended")
    if not isinstance(rec, dict) or rec.get("model") not in ("student", "baseline"):
        return {"recommendation": None}
    metric = rec.get("metric") or "accuracy"  # results before the field existed chose by accuracy
    label = "accuracy" if metric == "accuracy" else metric_info(metric, results.get("task"))[1]

    def pct(value):
        return f"{100 * float(value):.2f}%" if isinstance(value, (int, float)) else "n/a"

    return {
        "recommendation": {
            "model": rec["model"],
            "split": rec.get("split") or "validation",
            "metric": label[:1].lower() + label[1:] if not label.isupper() else label,
            "student": pct(rec.get(f"student_{metric}")),
            "baseline": pct(rec.get(f"baseline_{metric}")),
            "path": display_path(rec.get("path")) if rec["model"] == "baseline" else None,
        }
    }


def usage_values(results: dict, vision: bool, repo_id, usage_path, student_dir) -> dict:
    where = repo_id or usage_path
    if not where:
        where = display_path(os.path.abspath(student_dir)) if student_dir else "path/to/this/model"
    example = (results.get("usage_example") or USAGE_EXAMPLES.get(results.get("task") or "")
               or "how do I freeze my bank account?")
    return {"vision": vision, "from_hub": bool(repo_id), "where": where, "example": json.dumps(example)}


def log_table(log_history: list, max_rows: int = LOG_TABLE_ROWS) -> tuple:
    """Evaluation entries of a Trainer log history as (headers, rows); the last training loss before each."""
    evals, last_loss = [], None
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if any(k.startswith("eval_") for k in entry) and "eval_runtime" in entry:
            evals.append((last_loss, entry))
    if not evals:
        return [], []
    metric_names = []
    for _, entry in evals:
        for key in entry:
            if key.startswith("eval_") and not key.endswith(("_runtime", "_samples_per_second", "_steps_per_second")):
                if key not in metric_names:
                    metric_names.append(key)
    headers = ["step", "epoch", "training loss"] + [k[len("eval_"):].replace("_", " ") for k in metric_names]
    if len(evals) > max_rows:  # keep the first, the last and evenly spaced ones in between
        kept = sorted({round(i * (len(evals) - 1) / (max_rows - 1)) for i in range(max_rows)})
        evals = [evals[i] for i in kept]
    rows = [[str(entry.get("step", "")), fmt_float(entry.get("epoch"), 2), fmt_float(loss)]
            + [fmt_float(entry.get(k)) for k in metric_names] for loss, entry in evals]
    return headers, rows


def training_values(results: dict, student_dir, vision: bool) -> dict:
    training = dict(results.get("training") or {})
    splits = (results.get("dataset") or {}).get("splits") or {}
    rows = [{"name": f"`{k}`", "value": fmt_value(v)} for k, v in training.items()]
    if splits:
        rows.append({"name": "data splits", "value": ", ".join(f"{k} {v}" for k, v in splits.items())})
    log_headers, log_rows = log_table(results.get("log_history") or read_log_history(student_dir))
    versions = dict(results.get("versions") or {}) or package_versions(vision)
    return {
        "teacher_finetuned": bool(training.get("teacher_finetune")),
        "recipe": display_path(results.get("recipe")) if results.get("recipe") else None,
        "recipe_name": results.get("recipe_name"),
        "training_rows": rows,
        "timing_rows": [{"name": k, "value": fmt_float(v, 1)} for k, v in (results.get("timings_s") or {}).items()],
        "log_headers": log_headers,
        "log_rows": log_rows,
        "version_rows": [{"name": k, "value": v} for k, v in versions.items()],
    }


def card_values(results: dict, model_name: str, *, repo_id=None, plot=None, dynamics_plot=None, student_dir=None,
                usage_path=None) -> dict:
    """Every value the card template shows, from a results dict (the results.json format)."""
    task = results.get("task") or "text-classification"
    vision = task == "image-classification"
    teacher, student = _shown(results.get("teacher")), _shown(results.get("student"))
    baseline = _shown(results.get("baseline")) or None
    return {
        "model_name": model_name,
        "task_label": task if task in TASK_NAMES else "text-classification",
        "token_task": task == "token-classification",
        "paper": PAPER,
        "teacher": model_values(teacher, vision),
        "student": {"num_layers": fmt_value(student.get("num_layers"))},
        "has_baseline": bool(baseline),
        "dataset": dataset_values(results),
        # a packaged teacher is a copy of a Hub model, named in base_model like a Hub teacher
        "method": method_name(results.get("distillation")),
        "teacher_not_hub": not (hub_model_id(teacher.get("source"), vision)
                                or PACKAGED_SOURCES.get(str(teacher.get("source")))),
        "smoke": bool(results.get("smoke")),
        **size_values(teacher, student, baseline),
        "layer_map": layer_map_values(results.get("layer_map")),
        "plot": plot,
        "dynamics_plot": dynamics_plot,
        "distill_rows": distillation_rows(results.get("distillation")),
        "eval_split": results.get("eval_split") or "test",
        **result_values(results),
        **recommendation_values(results),
        **candidate_values(results),
        **teacher_budget_values(results),
        "usage": usage_values(results, vision, repo_id, usage_path, student_dir),
        **training_values(results, student_dir, vision),
    }
