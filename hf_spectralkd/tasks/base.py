"""The :class:`Task` interface every modality implements (see :mod:`hf_spectralkd.tasks` for the contract) and
the :class:`TaskData` it returns; the task packages import it from here, not from the package that imports them."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Task", "TaskData"]


@dataclass
class TaskData:
    """Raw splits (integer ``label`` column), sorted label names, and dataset facts for results.json."""

    splits: object  # datasets.DatasetDict with train / validation / test
    label_names: list
    info: dict = field(default_factory=dict)


class Task:
    """Base class of a pipeline task (see the module docstring for the contract)."""

    name = "base"

    def load_data(self, recipe) -> TaskData:
        return self.load_splits(recipe.data, need_test=recipe.evaluation.split == "test")

    def load_splits(self, section, need_test: bool = True) -> TaskData:
        raise NotImplementedError

    def load_split(self, section, split: str, max_samples: int | None = None) -> TaskData:
        """Only ``split`` of the labelled data of ``section`` (its first ``max_samples`` rows at most)."""
        data = self.load_splits(section, need_test=split == "test")
        if split not in data.splits:
            where = section.source or getattr(section, f"{split}_file", None)
            raise ValueError(f"--data {where!r} has no {split} split (found {', '.join(data.splits)})")
        carved = data.info.get("validation_carved")
        if split == "validation" and carved:  # (a model trained on the whole training file has seen those rows)
            where = section.source or section.train_file
            raise ValueError(
                f"--data {where!r} has no validation split of its own (no validation file): its 'validation' rows "
                f"would be {100 * carved['fraction']:g} % of the training rows, carved out with seed {carved['seed']} "
                "as a recipe run does, not validation data. Nothing was evaluated: pass --split test or --split "
                "train, or data with a validation file")
        rows = data.splits[split]
        if max_samples is not None and len(rows) > max_samples:
            rows = rows.select(range(max_samples))
        data.splits = type(data.splits)({split: rows})
        return data

    def read_rows(self, source: str, split: str = "train", what: str = "--data"):
        """All raw rows of ``split`` of ``source`` (see :func:`hf_spectralkd.tasks.sources.read_rows`)."""
        from .sources import read_rows

        return read_rows(source, split, what)

    def load_rows(self, source: str, split: str = "train", n: int | None = None, seed: int = 42,
                  in_order: bool = False, what: str = "--data"):
        """Raw rows of ``split`` of ``source``: a seeded sample of ``n`` (the first ``n`` with ``in_order``)."""
        from .sources import sample_rows

        return sample_rows(self.read_rows(source, split, what), n, seed, in_order)

    def load_model(self, reference: str, what: str = "--model", quiet: bool = False):
        """``(location, model)``: a saved classifier, resolved and loaded as the pipeline loads its own (``quiet``:
        without the library's load report, where the task has one)."""
        location = self.resolve_reference(reference, what)
        return location, self.load_classifier(None, location, what=what)

    def model_label_names(self, model) -> list | None:
        from ..adapters import get_adapter

        adapter = get_adapter(model)
        id2label = adapter.id2label(model) or {}
        names = [str(id2label.get(i, f"LABEL_{i}")) for i in range(adapter.num_labels(model))]
        return None if all(n.startswith("LABEL_") for n in names) else names

    @property
    def metric_names(self) -> tuple:
        """The ``metrics`` keys of this task's evaluations, in table order (see ``metrics.task_metrics``)."""
        from ..metrics import task_metrics

        return task_metrics(self.name)

    @property
    def primary_metric(self) -> str:
        """The metric the teacher's best epoch and the recommended model are chosen by (accuracy by default)."""
        return self.metric_names[0]

    def compute_metrics(self, label_names):
        """The ``Trainer`` ``compute_metrics`` of this task's models (accuracy and macro-F1 by default)."""
        from ..metrics import compute_metrics

        return compute_metrics

    def reference_label_names(self, model_ref) -> list | None:
        """The label names of the classifier ``model_ref`` by id, read from its configuration without building it;
        None when unknown or only ``LABEL_i`` (nothing to follow by default)."""
        return None

    def follow_teacher_labels(self, recipe, teacher_ref, data: TaskData) -> TaskData:
        """``data`` encoded with the ids of a given ``teacher.model`` whose ``id2label`` holds the data's label names
        in another order (the same set): labels are matched by name, the teacher is not refused as one "fine-tuned
        on another label set". A note in ``data.info["notes"]`` says so (the run logs it)."""
        if not recipe.teacher.model:
            return data
        names = self.reference_label_names(teacher_ref)
        ours = [str(n) for n in data.label_names]
        if not names or names == ours or len(names) != len(ours) or set(names) != set(ours):
            return data
        new_id = {old: names.index(name) for old, name in enumerate(ours)}
        data.splits = _relabelled(data.splits, new_id, names)
        data.label_names = list(names)
        data.info.setdefault("notes", []).append(
            f"teacher.model's id2label lists the {len(names)} labels of the data in another order than their sorted "
            f"names: the data is encoded with the teacher's ids, matched by name (e.g. {ours[0]!r} is id "
            f"{new_id[0]}, not 0)")
        return data

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

    def reference_depth(self, recipe, model_ref) -> int | None:
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
        """Save ``model`` as its adapter saves it (timm: timm's format; transformers: ``save_pretrained``)."""
        from ..adapters import get_adapter

        get_adapter(model).save(model, directory)

    def save_processor(self, processor, directory: str) -> None:
        if processor is not None and hasattr(processor, "save_pretrained"):
            processor.save_pretrained(directory)


def _relabelled(splits, new_id: dict, names: list):
    """``splits`` with their label ids (the ``label`` column, or the ``tags`` lists of a token task) renumbered by
    ``new_id``; negative ids (-100: rows without a label) are kept; a ``ClassLabel`` gets the new ``names``."""
    import datasets

    def renumber(value):
        return [renumber(v) for v in value] if isinstance(value, list) else new_id.get(value, value)

    out = {}
    for split, dataset in splits.items():
        column = "label" if "label" in dataset.column_names else "tags" if "tags" in dataset.column_names else None
        if column is None:
            out[split] = dataset
            continue
        feature = dataset.features[column]
        plain = datasets.Value("int64") if isinstance(feature, datasets.ClassLabel) else feature
        renamed = dataset.cast_column(column, plain).map(
            lambda batch, column=column: {column: [renumber(v) for v in batch[column]]}, batched=True,
            desc=f"encoding {split} labels in the teacher's order")
        out[split] = renamed.cast_column(column, datasets.ClassLabel(names=names)) \
            if isinstance(feature, datasets.ClassLabel) else renamed
    return type(splits)(out)
