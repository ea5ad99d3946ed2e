"""Render and write a model card: a results dict in, ``README.md`` (and the layer-intensity PNG) out."""

from __future__ import annotations

import os
from pathlib import Path

from ..constants import ANALYSIS_DIRNAME, CARD_FILENAME, DYNAMICS_PLOT_FILENAME, PLOT_FILENAME
from ..results import as_results_dict, results_from_trainer
from ..utils import copy_file, write_text
from .metadata import card_data, merge_existing
from .values import card_values

__all__ = ["TEMPLATE_PATH", "build_model_card", "write_model_card", "write_trainer_model_card"]

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "templates" / "model_card.md.jinja"


def _default_model_name(results: dict, repo_id: str | None, student_dir) -> str:
    if repo_id:
        return repo_id.split("/")[-1]
    if results.get("recipe_name"):
        return f"{results['recipe_name']}-spectralkd-student"
    base = os.path.basename(os.path.normpath(str(student_dir))) if student_dir else "spectralkd-student"
    parent = os.path.basename(os.path.dirname(os.path.abspath(str(student_dir)))) if student_dir else ""
    return f"{parent}-{base}" if base == "student" and parent else base


def build_model_card(
    results,
    *,
    model_name: str | None = None,
    repo_id: str | None = None,
    student_dir=None,
    plot: str | None = None,
    dynamics_plot: str | None = None,
    usage_path: str | None = None,
    license: str | None = None,
    language=None,
    extra_tags=(),
    base_model=None,
    datasets=None,
):
    """Render the card (a ``huggingface_hub.ModelCard``) for ``results`` (a ``RunResults`` or its dict)."""
    from huggingface_hub import ModelCard

    results = as_results_dict(results)
    if not isinstance(results, dict) or not results.get("student"):
        raise ValueError("results must be a run's results dict with at least a 'student' entry (see results.json)")
    model_name = model_name or _default_model_name(results, repo_id, student_dir)
    data = card_data(results, model_name, license=license, language=language, extra_tags=extra_tags,
                     base_model=base_model, datasets=datasets)
    values = card_values(results, model_name, repo_id=repo_id, plot=plot, dynamics_plot=dynamics_plot,
                         student_dir=student_dir, usage_path=usage_path)
    return ModelCard.from_template(data, template_path=str(TEMPLATE_PATH), **values)


def _find_plot(student_dir, results: dict, explicit: str | None) -> str | None:
    """Source of the layer-intensity PNG: explicit, the student dir, or the run's analysis/ folder."""
    candidates = [explicit] if explicit else []
    candidates.append(os.path.join(student_dir, PLOT_FILENAME))
    for base in filter(None, [results.get("output_dir"), os.path.dirname(os.path.abspath(student_dir))]):
        candidates.append(os.path.join(base, ANALYSIS_DIRNAME, PLOT_FILENAME))
        candidates.append(os.path.join(base, PLOT_FILENAME))
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def write_model_card(
    student_dir,
    results,
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    intensity_plot: str | None = None,
    overwrite: bool = False,
    usage_path: str | None = None,
    **card_kwargs,
) -> str:
    """Write ``README.md`` (the model card) into ``student_dir`` and return its path.

    Args:
        student_dir: the distilled student's directory (the card, the PNGs and the weights live there).
        results: the run's results (a ``RunResults`` or its dict, the results.json format).
        repo_id: the Hub repo the card is for (used in the usage snippet and as the model name).
        model_name: name in the title and the model-index (default: from ``repo_id`` or the recipe name).
        intensity_plot: a layer-intensity PNG to copy beside the card (default: ``student_dir/layer_intensity.png``,
            then ``<run>/analysis/layer_intensity.png``).
        overwrite: replace an existing README entirely instead of keeping the user's text and metadata.
        usage_path: model path written in the usage snippet when there is no ``repo_id``.
        card_kwargs: ``license``, ``language``, ``extra_tags``, ``base_model``, ``datasets`` for the metadata.
    """
    results = as_results_dict(results)
    student_dir = os.fspath(student_dir)
    if not os.path.isdir(student_dir):
        raise ValueError(
            f"student_dir {student_dir!r} is not a directory: write the model card after saving the student"
        )
    plot_source = _find_plot(student_dir, results, intensity_plot)
    plot = None
    if plot_source:
        target = os.path.join(student_dir, PLOT_FILENAME)
        if os.path.abspath(plot_source) != os.path.abspath(target):
            copy_file(plot_source, target)  # atomic, as the card itself
        plot = PLOT_FILENAME
    has_dynamics = os.path.isfile(os.path.join(student_dir, DYNAMICS_PLOT_FILENAME))
    dynamics_plot = DYNAMICS_PLOT_FILENAME if has_dynamics else None
    card = build_model_card(
        results, model_name=model_name, repo_id=repo_id, student_dir=student_dir, plot=plot,
        dynamics_plot=dynamics_plot, usage_path=usage_path, **card_kwargs,
    )
    path = os.path.join(student_dir, CARD_FILENAME)
    content = str(card)
    if os.path.isfile(path) and not overwrite:
        content = merge_existing(card, path)
    return write_text(path, content)  # atomic: a kill or a full disk never leaves a truncated card


def write_trainer_model_card(trainer, language=None, license=None, tags=None, model_name=None, finetuned_from=None,
                             tasks=None, dataset_tags=None, dataset=None, dataset_args=None, **_ignored) -> str:
    """``SpectralDistillationTrainer.create_model_card``: same arguments as ``Trainer.create_model_card``.

    TRL's shape: collect the values (:func:`hf_spectralkd.results.results_from_trainer`), then the pure writer."""
    if isinstance(dataset, (list, tuple)):
        dataset = dataset[0] if dataset else None
    if isinstance(tags, str):
        tags = [tags]
    results = results_from_trainer(trainer, dataset=dataset)
    hub_model_id = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id
    return write_model_card(
        trainer.args.output_dir, results, repo_id=hub_model_id, model_name=model_name, license=license,
        language=language, extra_tags=tags or (), base_model=finetuned_from, datasets=dataset_tags or None,
        usage_path=trainer.args.output_dir,
    )
