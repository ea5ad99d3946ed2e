"""A card's YAML metadata (``ModelCardData``: library, tags, base model, datasets, licence, ``model-index``) and the
merge with a README that is already there (keep the user's text and keys; replace only what this library owns)."""

from __future__ import annotations

import os
import re

from ..constants import CARD_FILENAME
from ..loading import PACKAGED_SOURCES, hub_model_id, packaged_model_path
from ..paper import TAG_NAMES
from .values import TASK_NAMES, dataset_hub_id, metric_info, metrics_of

__all__ = ["END_MARKER", "OWNED_KEYS", "START_MARKER", "card_data", "merge_existing"]

START_MARKER = "<!-- hf_spectralkd:card:start -->"
END_MARKER = "<!-- hf_spectralkd:card:end -->"
OWNED_KEYS = ("library_name", "pipeline_tag", "base_model", "datasets", "metrics", "model-index")
# the comment of the draft transformers.Trainer writes: that README is replaced, it is not the user's
TRAINER_DRAFT = "generated automatically according to the information the Trainer had access to"


def _readme_license(directory) -> str | None:
    if not directory or not os.path.isfile(os.path.join(directory, CARD_FILENAME)):
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(os.path.join(directory, CARD_FILENAME), ignore_metadata_errors=True).data.get("license")
    except Exception:  # a malformed README of a model we only read the licence from: no licence
        return None


def teacher_license(teacher: dict) -> str | None:
    """The teacher's licence, read from its local README (or the packaged MiniLM's); the student inherits it."""
    if teacher.get("license"):
        return teacher["license"]
    for candidate in (teacher.get("path"), teacher.get("source")):
        if not isinstance(candidate, str):
            continue
        if candidate in PACKAGED_SOURCES:
            candidate = _packaged_dir(candidate)
        found = _readme_license(os.path.expanduser(candidate)) if candidate else None
        if found:
            return found
    packaged = [name for name, hub in PACKAGED_SOURCES.items() if hub == teacher.get("base_model")]
    return _readme_license(_packaged_dir(packaged[0])) if packaged else None


def _packaged_dir(name: str) -> str | None:
    """The packaged model's directory, or None when its extra is not installed (the licence is then unknown here)."""
    try:
        return packaged_model_path(name)
    except ValueError:
        return None


def _eval_results(results: dict, task: str, vision: bool) -> list:
    """The student's metrics as ``EvalResult`` entries of the model-index."""
    from huggingface_hub import EvalResult

    dataset = results.get("dataset") or {}
    eval_split = results.get("eval_split") or "test"
    hub_dataset = dataset_hub_id(dataset)
    slug = re.sub(r"[^\w.-]+", "-", str(dataset.get("name") or "unknown")).strip("-")
    dataset_type = hub_dataset or slug or "unknown"
    entries = []
    for key, value in metrics_of(results.get("student")).items():
        if not isinstance(value, (int, float)):
            continue
        metric_type, metric_name, metric_args = metric_info(key, task)
        entries.append(EvalResult(
            task_type=task,
            task_name=TASK_NAMES.get(task, "Image Classification" if vision else "Text Classification"),
            dataset_type=dataset_type, dataset_name=str(dataset.get("name") or "unknown"), dataset_split=eval_split,
            metric_type=metric_type, metric_name=f"{metric_name} ({eval_split})", metric_args=metric_args,
            metric_value=round(float(value), 6),
        ))
    return entries


def card_data(results: dict, model_name: str, *, license=None, language=None, extra_tags=(), base_model=None,
              datasets=None):
    """The ``ModelCardData`` of a results dict; the keyword arguments override or add to what results say."""
    from huggingface_hub import ModelCardData

    task = results.get("task") or "text-classification"
    vision = task == "image-classification"
    teacher = results.get("teacher") or {}
    hub_dataset = dataset_hub_id(results.get("dataset") or {})
    if base_model is None:
        # a packaged teacher is a copy of a Hub model: name that model, so the Hub links the model tree
        source = teacher.get("source")
        base_model = PACKAGED_SOURCES.get(source) if isinstance(source, str) else None
        base_model = base_model or hub_model_id(source, vision)
    if datasets is None and hub_dataset:
        datasets = [hub_dataset]
    if isinstance(datasets, str):
        datasets = [datasets]
    eval_results = _eval_results(results, task, vision)
    tags = list(TAG_NAMES)
    for tag in ["knowledge-distillation", task, *(extra_tags or [])]:
        if tag and tag not in tags:
            tags.append(tag)
    metrics = []
    for result in eval_results:
        if result.metric_type not in metrics:
            metrics.append(result.metric_type)
    return ModelCardData(
        library_name="timm" if vision else "transformers", pipeline_tag=task,
        license=license or teacher_license(teacher) or None, language=language, base_model=base_model,
        datasets=datasets or None, metrics=metrics or None, tags=tags, model_name=model_name,
        eval_results=eval_results or None,
    )


def _merged_metadata(old_meta: dict, new_meta: dict) -> dict:
    """Keys we own from the new card, the user's other keys kept, tags united (the user's first)."""
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
    return {k: merged[k] for k in order}


def merge_existing(new_card, path: str) -> str:
    """The content of ``path`` (an existing README) with ``new_card``'s generated block and metadata merged in.

    The generated block replaces the old one between the markers; a README without markers keeps its text and
    gets the block appended, except the draft ``transformers.Trainer`` writes (or an empty body), which is replaced.
    """
    from huggingface_hub import ModelCard, ModelCardData

    with open(path, encoding="utf-8") as handle:
        old_text = handle.read()
    try:
        old = ModelCard(old_text, ignore_metadata_errors=True)
        old_meta, old_body = old.data.to_dict(), old.text
    except ValueError:  # metadata block that is not a mapping: keep the whole file as body text
        old_meta, old_body = {}, old_text
    merged = _merged_metadata(old_meta, new_card.data.to_dict())
    new_body = new_card.text
    block = new_body[new_body.index(START_MARKER): new_body.index(END_MARKER) + len(END_MARKER)]
    if START_MARKER in old_body and END_MARKER in old_body:
        before = old_body[: old_body.index(START_MARKER)]
        after = old_body[old_body.index(END_MARKER) + len(END_MARKER):]
        body = before + block + after
    elif TRAINER_DRAFT in old_body or not old_body.strip():
        body = new_body
    else:
        body = old_body.rstrip() + "\n\n" + block + "\n"
    data = ModelCardData(**merged, ignore_metadata_errors=True)
    return f"---\n{data.to_yaml()}\n---\n{body}"
