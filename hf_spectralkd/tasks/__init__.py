"""Task registry: the parts of the recipe pipeline that depend on the modality.

The pipeline (:mod:`hf_spectralkd.pipeline`) is modality-agnostic: it runs the stages teacher -> analysis ->
student -> distillation -> evaluation -> baseline -> results, and asks a :class:`Task` for everything that
depends on the data and the model family. A recipe names its task in ``task:`` (default
``text-classification``); ``get_task(name)`` returns an instance of the registered class.

The token task (``tasks/tokens/``, ``token-classification``) is the text task with word-list / tag-list data, a
token-classification head and its own metrics. Adding a modality (e.g. the ``tasks/image/`` package for timm)
means subclassing :class:`Task`, decorating it with ``@register_task("image-classification")`` and adding its
module to ``BUILTIN_TASK_MODULES`` (registry.py); the pipeline's flow does not change. The contract (every method
gets the validated :class:`~hf_spectralkd.recipes.Recipe`):

``load_data(recipe) -> TaskData``
    Raw splits ``train`` / ``validation`` / ``test`` as a ``datasets.DatasetDict`` with an integer
    ``label`` column (ids into ``label_names``, sorted label names of the training split), plus ``info``
    (``name``, ``source``, ``text_column``, ``label_column``, ``license``, ``citation`` and ``hub_id``: the recipe's
    or the data's own dataset card's, see ``sources.finish_splits``; ``leakage``: evaluation rows copied from
    training; ``validation_carved`` when validation was cut from train) for results.json.
    Raises ``ValueError`` before any work for missing files/columns, empty splits, unknown test labels. (The token
    task: ``tokens`` word lists and ``tags`` lists of tag ids; ``info`` names ``tokens_column`` / ``tags_column``.)
``load_processor(recipe, model_ref) -> processor``
    Tokenizer / image processor of the teacher (``model_ref`` is a resolved local dir or Hub id).
``prepare_datasets(recipe, data, processor) -> DatasetDict``
    Model inputs plus ``labels`` for each split (tokenized / transformed); the token task also adds ``kd_mask``.
``data_collator(processor)``
    Batch collator for the Trainer (dynamic padding for text).
``load_base(recipe, model_ref, label_names) -> model``
    The teacher base with a fresh classification head of ``len(label_names)`` classes, ``id2label`` /
    ``label2id`` set (for ``teacher.base`` + ``finetune``).
``load_classifier(recipe, model_ref, label_names) -> model``
    A fine-tuned classifier (``teacher.model``, saved teachers/students); checks its label set.
``build_student(recipe, teacher, label_names, init_layers) -> model``
    The student for ``student.init`` = ``teacher_layers`` (copy embeddings + ``init_layers`` + head),
    ``pretrained`` (``student.model``) or ``config``. ``init_layers`` are hidden_states indices (1..n).
``check_references(recipe, teacher_ref)``
    Before any work: the models can be loaded as the run will (e.g. timm weights that need the Hub).
``reference_depth(recipe, model_ref) -> int | None``
    The teacher's depth from its configuration, before anything is built (None when unknown).
``reference_label_names(model_ref)`` / ``follow_teacher_labels(recipe, teacher_ref, data) -> TaskData``
    A given teacher's label names from its configuration; when they are the data's in another order, the data
    is encoded with the teacher's ids (by name) instead of the teacher being refused.
``num_layers(model)`` / ``describe(model) -> dict``
    Depth, and ``num_layers``, ``hidden_size``, ``num_parameters`` for results.json.
``training_overrides(recipe) -> dict``
    TrainingArguments fields the task needs (e.g. ``remove_unused_columns=False`` for images).
``save_processor(processor, directory)``
    Save the tokenizer / processor next to a model.
``resolve_reference(reference, what)``
    A model reference made usable (local dir or Hub id; the image task also takes timm model names).
``trainer_class()``
    The ``transformers.Trainer`` class for plain (no-KD) training and evaluation of the task's models.
``compute_metrics(label_names)`` / ``metric_names`` / ``primary_metric``
    The ``Trainer`` ``compute_metrics`` of the task's models, the ``metrics`` keys it returns (results.json, the
    summary, the card) and the one the teacher's best epoch and the recommended model are chosen by: accuracy and
    macro-F1 / ``accuracy`` by default, seqeval's ``f1`` / ``precision`` / ``recall`` and token ``accuracy`` /
    ``f1`` for ``token-classification`` (:mod:`hf_spectralkd.metrics`).
``save_model(model, directory)``
    Save a trained model in its library's format (``save_pretrained`` for transformers, timm's for timm).

The commands (``analyze``, ``compare``, ``cache-teacher``, ``evaluate``) use the same task from plain arguments:

``load_rows(source, split, n, seed, in_order=False)``
    The one way to turn a ``--data`` argument (a file, a directory of split files, a Hub id; ``sklearn:digits``
    or an imagefolder for images) into raw rows: the seeded sample of ``n`` rows every spectral measurement
    reads (the first ``n`` with ``in_order``; all rows when ``n`` is None).
``load_model(reference, what)`` -> ``(location, model)``
    A saved classifier from a directory, Hub id or packaged name, for evaluation or analysis.
``load_splits(section, need_test)`` / ``load_split(section, split, max_samples)`` -> ``TaskData``
    Labelled splits of a data section (``load_data(recipe)`` is ``load_splits(recipe.data, ...)``); a
    section for ``--data`` is built by :func:`hf_spectralkd.tasks.sections.data_section`.
``prepare_splits(splits, processor, section)``
    Model inputs of raw splits (``prepare_datasets(recipe, ...)`` is this with ``recipe.data``).
``analysis_loader(rows, processor, batch_size, **options)``
    A ``DataLoader`` of model inputs (no labels) over raw rows, for the spectral analysis.
``model_label_names(model)``
    The label names a saved classifier carries (None when they are only ``LABEL_i``).
"""

from __future__ import annotations

import importlib

from .base import Task, TaskData
from .registry import BUILTIN_TASK_MODULES, TASK_REGISTRY, available_tasks, register_task

__all__ = ["Task", "TaskData", "TASK_REGISTRY", "register_task", "get_task", "available_tasks"]


def get_task(name: str) -> Task:
    if name not in TASK_REGISTRY and name in BUILTIN_TASK_MODULES:
        try:
            importlib.import_module(BUILTIN_TASK_MODULES[name], __package__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}{BUILTIN_TASK_MODULES[name]}":
                raise ValueError(f"task {name!r} needs the package {exc.name!r}: {exc}") from exc
    if name not in TASK_REGISTRY:
        raise ValueError(f"unknown task {name!r}: available tasks are {', '.join(available_tasks())}")
    return TASK_REGISTRY[name]()
