"""The ``results.json`` a recipe run writes, as a versioned dataclass.

A run's results are read by the summary, the model card and ``hf-spectralkd push`` / ``card``; a
``SpectralDistillationTrainer`` fills the same shape, partly, for ``trainer.push_to_hub()``
(:func:`results_from_trainer`). The sections are plain dicts (``teacher``, ``student`` and ``baseline``:
``source``, ``path``, ``num_layers``, ``hidden_size``, ``num_parameters``, ``throughput_samples_per_s``,
``metrics``; the student and baseline also ``init`` and ``init_layers``), so a reader written for the JSON
reads them unchanged. ``recommended`` (the model to use, chosen on the validation split) is optional: results
written before it existed, or by a run without a baseline, have none.

Format versions: 1 is the first versioned format; files written before the field existed read as version 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import Any

from .constants import (
    RESULTS_FILENAME,
    STAGE_DIRNAMES,
    STAGE_MARKER,
    STUDENT_DIRNAME,
    TRAINER_RESULTS_FILENAME,
    TRAINING_LOG_FILENAME,
)
from .utils import read_json, write_json

__all__ = [
    "RESULTS_FORMAT_VERSION",
    "RunResults",
    "as_results_dict",
    "find_run_results",
    "last_eval_metrics",
    "package_versions",
    "read_log_history",
    "results_from_trainer",
]

RESULTS_FORMAT_VERSION = 1
# eval_* keys of a Trainer log entry that are not metrics of the model
_EVAL_SKIP = ("loss", "runtime", "samples_per_second", "steps_per_second", "epoch", "ce_loss", "kd_loss", "freq_loss",
              "align_loss")
# written only when set: the trainer's results carry them, a recipe run's do not
_OPTIONAL = ("log_history", "usage_example", "stages", "recommended", "candidates")


@dataclass
class RunResults:
    """One run's results (the ``results.json`` format); every field but ``format_version`` may be missing."""

    format_version: int = RESULTS_FORMAT_VERSION
    recipe: str | None = None
    recipe_name: str | None = None
    created: str | None = None  # ISO 8601, UTC
    task: str | None = None  # "text-classification" / "image-classification"
    eval_split: str | None = None
    smoke: bool | None = None
    dataset: dict | None = None  # name, source, license, citation, splits {name: size}, label_names, ...
    teacher: dict | None = None
    student: dict | None = None
    baseline: dict | None = None  # the no-KD student, or None when not trained
    # the model to use, chosen on the validation split: model ("student" / "baseline"), path, split,
    # student_accuracy, baseline_accuracy, reason; absent without a baseline or a validation split
    recommended: dict | None = None
    layer_map: dict | None = None  # teacher_layers, student_layers, strategy, teacher_intensity, teacher_entropy
    # distillation.candidates: each candidate's name, overrides, validation metrics, train_seconds, chosen
    candidates: list | None = None
    distillation: dict | None = None  # alpha, temperature, beta, fft_axis, ... (SpectralDistillationConfig)
    training: dict | None = None  # learning_rate, max_steps, seed, teacher_finetune, ...
    timings_s: dict | None = None  # stage -> seconds, and "total"
    reused_stages: list | None = None
    stages: dict | None = None  # stage -> fingerprint and finish time of its stage_done.json when this was written
    versions: dict | None = None  # package -> version
    output_dir: str | None = None
    hub: dict | None = None  # the recipe's hub section
    log_history: list | None = None  # the Trainer's log history (trainer results only)
    usage_example: str | None = None  # the input shown in the card's usage snippet
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as they are

    @classmethod
    def from_dict(cls, data: dict) -> RunResults:
        """Read a results dict (a file without ``format_version`` is version 1); unknown keys go to ``extra``."""
        if not isinstance(data, dict):
            raise ValueError(f"results must be a mapping (the results.json format), got {type(data).__name__}")
        version = data.get("format_version", 1)
        if not isinstance(version, int) or not 1 <= version <= RESULTS_FORMAT_VERSION:
            raise ValueError(
                f"results format_version {version!r} is not one this hf_spectralkd reads "
                f"(1..{RESULTS_FORMAT_VERSION}): it was written by another version of the library"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**{**known, "format_version": version}, extra=extra)

    def to_dict(self) -> dict:
        """The JSON-able dict: ``format_version``, then the fields in results.json order, then ``extra``."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in _OPTIONAL and value is None):
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    def save(self, out_dir) -> str:
        """Write ``<out_dir>/results.json`` atomically; returns its path."""
        return write_json(os.path.join(os.fspath(out_dir), RESULTS_FILENAME), self.to_dict())

    @classmethod
    def load(cls, path) -> RunResults:
        """Read a ``results.json`` file (or the one in directory ``path``)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, RESULTS_FILENAME)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except ValueError as exc:
            raise ValueError(
                f"{path} is not valid JSON ({exc}); re-run the recipe's evaluate stage to rewrite it"
            ) from exc
        if not isinstance(data, dict) or "student" not in data:
            raise ValueError(f"{path} has no 'student' entry: it is not a finished run's results.json")
        return cls.from_dict(data)


def stage_records(run_dir) -> dict:
    """Each finished stage folder of ``run_dir``: the fingerprint and finish time of its ``stage_done.json``."""
    records = {}
    for name in STAGE_DIRNAMES:
        marker = read_json(os.path.join(os.fspath(run_dir), name, STAGE_MARKER))
        if isinstance(marker, dict):
            records[name] = {"fingerprint": marker.get("fingerprint"), "finished": marker.get("finished")}
    return records


def check_results_current(results: RunResults, run_dir) -> None:
    """Raise ``ValueError`` when ``results`` describes other models than the ones in ``run_dir`` (a run stopped
    between stages has replaced a stage since the results were written). Results without stage records (written
    before they existed, or by the trainer) are not checked."""
    if not results.stages:
        return
    current = stage_records(run_dir)
    for name, record in results.stages.items():
        now = current.get(name)
        if now != record:
            if not now:
                state = "no longer holds a finished stage"
            elif now.get("finished") != record.get("finished"):
                state = f"now holds the one finished at {now.get('finished')}"
            else:  # the same finish time, other inputs: say what differs, not the same time twice
                state = (f"holds one finished at that time but from other inputs (fingerprint "
                         f"{now.get('fingerprint')}, results.json records {record.get('fingerprint')})")
            raise ValueError(
                f"{os.path.join(os.fspath(run_dir), RESULTS_FILENAME)} describes the {name} finished at "
                f"{record.get('finished')}, but {os.path.join(os.fspath(run_dir), name)} {state} (a run stopped "
                "between stages, or an edited results.json or stage_done.json?): its numbers would be wrong. Run the "
                "recipe again "
                "(`hf-spectralkd distill --config ...`): it reuses the finished stages and rewrites results.json"
            )


def find_run_results(model_dir, option: str = "--model-dir") -> tuple:
    """``(results, student_dir)`` for a run dir (``<run>/results.json`` + ``<run>/student/``) or a student dir
    (``results.json`` in it or in its parent). ``results`` is a :class:`RunResults`, or None when no
    results.json is found; ``option`` names the argument in the error for a missing directory."""
    model_dir = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(model_dir):
        raise ValueError(f"{option} {model_dir!r} does not exist or is not a directory")
    own = os.path.join(model_dir, RESULTS_FILENAME)
    if os.path.isfile(own) and os.path.isdir(os.path.join(model_dir, STUDENT_DIRNAME)):
        results = RunResults.load(own)
        check_results_current(results, model_dir)
        return results, os.path.join(model_dir, STUDENT_DIRNAME)
    for candidate in (own, os.path.join(os.path.dirname(model_dir), RESULTS_FILENAME)):
        if os.path.isfile(candidate):
            results = RunResults.load(candidate)
            check_results_current(results, os.path.dirname(candidate))
            return results, model_dir
    trainer_results = os.path.join(model_dir, TRAINER_RESULTS_FILENAME)  # a script's trainer.save_model()
    if os.path.isfile(trainer_results):
        return RunResults.load(trainer_results), model_dir
    return None, model_dir


# ----------------------------------------------------------------------------------------------- trainer
def package_versions(vision: bool = False, extra: tuple = ()) -> dict:
    """Installed versions of the packages a run depends on (timm only for vision; ``extra``: a model family's own,
    :attr:`~hf_spectralkd.adapters.ModelAdapter.packages`)."""
    names = ["hf_spectralkd", "torch", "transformers", "accelerate", "datasets", "huggingface_hub"]
    for name in (*(("timm",) if vision else ()), *extra):
        if name not in names:
            names.append(name)
    versions = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def last_eval_metrics(log_history: list) -> tuple:
    """``(metrics, step)`` of the last evaluation in a Trainer log history (``eval_`` prefix removed)."""
    for entry in reversed(log_history or []):
        metric_keys = [k for k in entry if k.startswith("eval_") and k[5:] not in _EVAL_SKIP]
        if "eval_runtime" in entry or metric_keys:
            metrics = {k[5:]: float(entry[k]) for k in metric_keys if isinstance(entry[k], (int, float))}
            return metrics, entry.get("step")
    return {}, None


def read_log_history(student_dir) -> list:
    """The Trainer log history saved in ``student_dir`` (the pipeline's training_log.json, or trainer_state.json)."""
    if not student_dir:
        return []
    for name, key in ((TRAINING_LOG_FILENAME, None), ("trainer_state.json", "log_history")):
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


def _describe_model(trainer, adapter, model, role: str) -> dict:
    """Sizes and origin of the trainer's teacher or student, as a results section (no metrics yet)."""
    try:
        info = dict(adapter.describe(model))
    except Exception:  # a wrapped / sharded model whose sizes cannot be read: leave them out
        info = {}
    config = getattr(model, "config", None)
    source = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None) or None
    info.setdefault("hidden_size", None)
    info["source"] = source if role == "teacher" else None
    if role == "teacher":
        info["path"] = source if source and os.path.isdir(source) else None
    else:
        info["path"] = trainer.args.output_dir
    info["throughput_samples_per_s"] = None
    return info


def _length(dataset) -> int | None:
    if dataset is None or isinstance(dataset, dict):  # a dict of eval sets has no one size
        return None
    try:
        return len(dataset)
    except TypeError:  # an iterable dataset
        return None


def _trainer_hyperparameters(trainer) -> tuple:
    """The ``distillation`` and ``training`` sections from a trainer's arguments and state."""
    args = trainer.args
    distillation = {
        "alpha": args.alpha, "temperature": args.temperature, "beta": args.beta, "fft_axis": args.fft_axis,
        "freq_loss_variant": args.freq_loss_variant, "layer_selection": args.layer_selection,
    }
    training = {
        "learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs, "max_steps": args.max_steps,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps, "weight_decay": args.weight_decay,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "seed": args.seed, "global_step": trainer.state.global_step,
    }
    return distillation, training


def results_from_trainer(trainer, dataset: str | None = None, eval_split: str = "validation") -> RunResults:
    """Results (partly filled) from what a ``SpectralDistillationTrainer`` knows: model sizes, layer map and teacher
    intensities, hyper-parameters, and the last evaluation in ``log_history`` (measured on the trainer's
    ``eval_dataset``; the teacher and a baseline are not evaluated by the trainer).

    Duck-typed: reads ``args``, ``model``, ``teacher``, ``student_adapter``, ``teacher_adapter``, ``state``,
    ``layer_map`` (a dataclass or None), ``train_dataset`` and ``eval_dataset``.
    """
    from .adapters import unwrap_model

    student_model, teacher_model = unwrap_model(trainer.model), unwrap_model(trainer.teacher)
    adapter = trainer.student_adapter  # the model family: its task and its own packages
    teacher = {**_describe_model(trainer, trainer.teacher_adapter, teacher_model, "teacher"), "metrics": {}}
    student = _describe_model(trainer, trainer.student_adapter, student_model, "student")
    student["metrics"] = last_eval_metrics(trainer.state.log_history)[0]
    sizes = (("train", _length(trainer.train_dataset)), (eval_split, _length(trainer.eval_dataset)))
    distillation, training = _trainer_hyperparameters(trainer)
    evaluated = trainer.eval_dataset is not None
    dataset_section = {
        "name": dataset or ("the Trainer's eval_dataset" if evaluated else "no evaluation data (no eval_dataset)"),
        "source": dataset,
        "num_labels": trainer.student_adapter.num_labels(student_model),
        "splits": {k: v for k, v in sizes if v is not None},
    }
    return RunResults(
        task=adapter.task_of(trainer.model),
        eval_split=eval_split,
        dataset=dataset_section,
        teacher=teacher,
        student=student,
        layer_map=dataclasses.asdict(trainer.layer_map) if trainer.layer_map is not None else {},
        distillation=distillation,
        training=training,
        log_history=list(trainer.state.log_history),
        versions=package_versions(extra=adapter.packages),
        output_dir=trainer.args.output_dir,
    )


def as_results_dict(results: Any) -> dict:
    """A results dict from a :class:`RunResults` or a dict (returned as it is)."""
    return results.to_dict() if isinstance(results, RunResults) else results
