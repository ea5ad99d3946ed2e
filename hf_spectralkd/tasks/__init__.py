"""Task registry: the parts of the recipe pipeline that depend on the modality.

The pipeline (:mod:`hf_spectralkd.pipeline`) is modality-agnostic: it runs the stages teacher -> analysis ->
student -> distillation -> evaluation -> baseline -> results, and asks a :class:`Task` for everything that
depends on the data and the model family. A recipe names its task in ``task:`` (default
``text-classification``); ``get_task(name)`` returns an instance of the registered class.

Adding a modality (e.g. the ``tasks/image/`` package for timm) means subclassing :class:`Task`, decorating it with
``@register_task("image-classification")`` and adding its module to ``_BUILTIN_MODULES`` below; the
pipeline's flow does not change. The contract (every method gets the validated
:class:`~hf_spectralkd.recipes.Recipe`):

``load_data(recipe) -> TaskData``
    Raw splits ``train`` / ``validation`` / ``test`` as a ``datasets.DatasetDict`` with an integer
    ``label`` column (ids into ``label_names``, sorted label names of the training split), plus ``info``
    (``name``, ``source``, ``text_column``, ``label_column``, ``license``, ``citation``) for results.json.
    Raises ``ValueError`` before any work for missing files/columns, empty splits, unknown test labels.
``load_processor(recipe, model_ref) -> processor``
    Tokenizer / image processor of the teacher (``model_ref`` is a resolved local dir or Hub id).
``prepare_datasets(recipe, data, processor) -> DatasetDict``
    Model inputs plus ``labels`` for each split (tokenized / transformed).
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
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Task", "TaskData", "TASK_REGISTRY", "register_task", "get_task", "available_tasks"]

TASK_REGISTRY: dict = {}
# modules imported lazily by get_task(); a missing optional dependency only matters for that task
_BUILTIN_MODULES = {"text-classification": ".text", "image-classification": ".image"}


@dataclass
class TaskData:
    """Raw splits (integer ``label`` column), sorted label names, and dataset facts for results.json."""

    splits: object  # datasets.DatasetDict with train / validation / test
    label_names: list
    info: dict = field(default_factory=dict)


def register_task(name: str):
    def decorator(cls):
        cls.name = name
        TASK_REGISTRY[name] = cls
        return cls

    return decorator


def available_tasks() -> list:
    return sorted(set(TASK_REGISTRY) | set(_BUILTIN_MODULES))


def get_task(name: str) -> "Task":
    if name not in TASK_REGISTRY and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name], __package__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}{_BUILTIN_MODULES[name]}":
                raise ValueError(f"task {name!r} needs the package {exc.name!r}: {exc}") from exc
    if name not in TASK_REGISTRY:
        raise ValueError(f"unknown task {name!r}: available tasks are {', '.join(available_tasks())}")
    return TASK_REGISTRY[name]()


class Task:
    """Base class of a pipeline task (see the module docstring for the contract)."""

    name = "base"

    def load_data(self, recipe) -> TaskData:
        return self.load_splits(recipe.data, need_test=recipe.evaluation.split == "test")

    def load_splits(self, section, need_test: bool = True) -> TaskData:
        raise NotImplementedError

    def load_split(self, section, split: str, max_samples: Optional[int] = None) -> TaskData:
        """Only ``split`` of the labelled data of ``section`` (its first ``max_samples`` rows at most)."""
        data = self.load_splits(section, need_test=split == "test")
        if split not in data.splits:
            where = section.source or getattr(section, f"{split}_file", None)
            raise ValueError(f"--data {where!r} has no {split} split (found {', '.join(data.splits)})")
        rows = data.splits[split]
        if max_samples is not None and len(rows) > max_samples:
            rows = rows.select(range(max_samples))
        data.splits = type(data.splits)({split: rows})
        return data

    def read_rows(self, source: str, split: str = "train", what: str = "--data"):
        """All raw rows of ``split`` of ``source`` (see :func:`hf_spectralkd.tasks.sources.read_rows`)."""
        from .sources import read_rows

        return read_rows(source, split, what)

    def load_rows(self, source: str, split: str = "train", n: Optional[int] = None, seed: int = 42,
                  in_order: bool = False, what: str = "--data"):
        """Raw rows of ``split`` of ``source``: a seeded sample of ``n`` (the first ``n`` with ``in_order``)."""
        from .sources import sample_rows

        return sample_rows(self.read_rows(source, split, what), n, seed, in_order)

    def load_model(self, reference: str, what: str = "--model", quiet: bool = False):
        """``(location, model)``: a saved classifier, resolved and loaded as the pipeline loads its own (``quiet``:
        without the library's load report, where the task has one)."""
        location = self.resolve_reference(reference, what)
        return location, self.load_classifier(None, location, what=what)

    def model_label_names(self, model) -> Optional[list]:
        from ..adapters import get_adapter

        adapter = get_adapter(model)
        id2label = adapter.id2label(model) or {}
        names = [str(id2label.get(i, f"LABEL_{i}")) for i in range(adapter.num_labels(model))]
        return None if all(n.startswith("LABEL_") for n in names) else names

    def check_labels(self, model, label_names, what: str = "model") -> None:
        """Raise ``ValueError`` when ``model`` does not predict ``label_names``; nothing to check by default."""

    def load_processor(self, recipe, model_ref):
        raise NotImplementedError

    def model_processor(self, model, model_ref):
        """The processor that prepares inputs for ``model`` (loaded from ``model_ref``), e.g. its own tokenizer."""
        return self.load_processor(None, model_ref)

    def prepare_datasets(self, recipe, data: TaskData, processor):
        return self.prepare_splits(data.splits, processor, recipe.data)

    def prepare_splits(self, splits, processor, section):
        raise NotImplementedError

    def analysis_loader(self, rows, processor, batch_size: int = 32, **options):
        raise NotImplementedError

    def data_collator(self, processor):
        return None

    def load_base(self, recipe, model_ref, label_names):
        raise NotImplementedError

    def load_classifier(self, recipe, model_ref, label_names=None, what: str = "model"):
        raise NotImplementedError

    def build_student(self, recipe, teacher, label_names, init_layers):
        raise NotImplementedError

    def num_layers(self, model) -> int:
        from ..adapters import get_adapter

        return get_adapter(model).num_layers(model)

    def check_references(self, recipe, teacher_ref) -> None:
        """Before any work: the teacher (and a pretrained student) can be loaded where the run will load them (raises
        ``ValueError``). References were already resolved by :meth:`resolve_reference`; nothing to add by default."""

    def reference_depth(self, recipe, model_ref) -> Optional[int]:
        """The number of blocks of the teacher ``model_ref`` read from its configuration without building it, or
        None when that is not known before the model is built (the depth is then checked once it is)."""
        return None

    def describe(self, model) -> dict:
        from ..adapters import get_adapter

        info = get_adapter(model).describe(model)
        return {
            "num_layers": info.get("num_layers"),
            "hidden_size": info.get("hidden_size"),
            "num_parameters": int(info.get("num_parameters") or sum(p.numel() for p in model.parameters())),
        }

    def training_overrides(self, recipe) -> dict:
        return {}

    def resolve_reference(self, reference, what: str = "model"):
        from ..loading import resolve_model_reference

        return resolve_model_reference(reference, what)

    def trainer_class(self):
        from transformers import Trainer

        return Trainer

    def save_model(self, model, directory: str) -> None:
        model.save_pretrained(directory)

    def save_processor(self, processor, directory: str) -> None:
        if processor is not None and hasattr(processor, "save_pretrained"):
            processor.save_pretrained(directory)
