"""``text-classification``: transformers sequence classifiers on text (or text-pair) data.

``data`` loads and label-encodes the splits, ``processing`` holds the task's one tokeniser, ``models`` loads
classifiers and builds students.
"""

from __future__ import annotations

from ..base import Task, TaskData
from ..registry import register_task
from ..sources import training_copies
from . import processing
from .models import build_text_student, check_labels, copy_teacher_layers, find_layer_list, label_maps
from .processing import check_text_columns, text_collator, tokenize, tokenize_splits

__all__ = ["TextClassificationTask", "copy_teacher_layers", "find_layer_list", "tokenize", "tokenize_splits"]


@register_task("text-classification")
class TextClassificationTask(Task):
    """Text (or text-pair) classification with a transformers ``AutoModelForSequenceClassification``."""

    check_labels = staticmethod(check_labels)
    auto_class = "AutoModelForSequenceClassification"  # the transformers auto class of the task's models

    def tokenize(self, dataset, tokenizer, text_column="text", text_pair_column=None, max_length=128, **options):
        """The task's one tokeniser (:func:`hf_spectralkd.tasks.text.processing.tokenize`): training splits, the
        spectral analysis and the teacher cache all go through it."""
        return processing.tokenize(dataset, tokenizer, text_column, text_pair_column, max_length, **options)

    def load_splits(self, section, need_test: bool = True) -> TaskData:
        from .data import load_text_data

        splits, label_names, info = load_text_data(section, need_test=need_test)
        return TaskData(splits=splits, label_names=label_names, info=info)

    def load_data(self, recipe) -> TaskData:
        """The labelled splits, then the recipe's transfer set: ``data.labels_per_class`` keeps that many labelled
        training rows per class, ``data.transfer`` appends unlabelled rows (label -100) to the training split."""
        from . import transfer

        data = super().load_data(recipe)
        section = recipe.data
        train, left_out = data.splits["train"], None
        if section.labels_per_class is not None:
            train, left_out = transfer.labels_per_class(train, section.labels_per_class, section.seed)
        data.info["labelled_train_rows"] = len(train)
        if section.transfer is not None:
            texts = transfer.load_transfer_texts(section, left_out)
            train = transfer.add_transfer_rows(train, texts, section)
            data.info["transfer_rows"] = len(texts)
        data.splits["train"] = train
        data.info["splits"]["train"] = len(train)
        data.info["leakage"] = training_copies(data.splits, (section.text_column, section.text_pair_column))
        return data

    def prepare_datasets(self, recipe, data: TaskData, processor):
        """Model inputs of every split; ``data.augment`` first appends augmented copies of the labelled training
        texts (masked with this tokenizer's mask token) as unlabelled rows."""
        from . import transfer

        splits = data.splits
        if recipe.data.augment is not None:
            splits = type(splits)(splits)
            before = len(splits["train"])
            mask_token = getattr(processor, "mask_token", None)
            splits["train"] = transfer.augmented_rows(splits["train"], recipe.data, mask_token)
            data.info["augmented_rows"] = len(splits["train"]) - before
        return self.prepare_splits(splits, processor, recipe.data)

    def load_processor(self, recipe, model_ref):
        """The tokenizer saved with ``model_ref`` (``recipe`` is not needed and may be None)."""
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(model_ref)
        except (OSError, ValueError) as exc:
            raise ValueError(f"could not load a tokenizer from {model_ref!r}: {str(exc).splitlines()[0]}") from exc

    def prepare_splits(self, splits, processor, section):
        return processing.tokenize_splits(splits, processor, section)

    def data_collator(self, processor):
        return text_collator(processor)

    def analysis_loader(self, rows, processor, batch_size: int = 32, text_column: str = "text",
                        text_pair_column=None, max_length=128):
        """Batches of padded token ids over raw ``rows`` (a ``datasets.Dataset`` or a list of dicts)."""
        from torch.utils.data import DataLoader

        encoded = self.tokenize(rows, processor, text_column, text_pair_column, max_length,
                                desc="tokenizing for analysis")
        return DataLoader(encoded, batch_size=batch_size, shuffle=False, collate_fn=text_collator(processor))

    def check_references(self, recipe, teacher_ref) -> None:
        """Before any work: max_length within the models' positions, the student's vocabulary and tokenizer."""
        from .checks import check_text_models

        student = self.resolve_reference(recipe.student.model, "student.model") \
            if recipe.student.init == "pretrained" else None
        check_text_models(recipe, teacher_ref, student, self.load_processor(recipe, teacher_ref), self.auto_class)

    def check_rows(self, rows, text_column: str = "text", text_pair_column=None, where: str = "the data") -> None:
        """The text columns exist in ``rows`` (checked before any model is loaded)."""
        check_text_columns(rows.column_names, text_column, text_pair_column, where)

    def load_base(self, recipe, model_ref, label_names):
        from ...loading import load_classifier

        id2label, label2id = label_maps(label_names)
        return load_classifier(
            model_ref, what="teacher.base", auto_class=self.auto_class, num_labels=len(label_names),
            id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True,
        )

    def load_model(self, reference: str, what: str = "--model", quiet: bool = False):
        """``(location, model)``; ``quiet`` hides transformers' load report (a base encoder read only for its hidden
        states, such as the packaged MiniLM, gets a fresh classification head, which is expected)."""
        from transformers.utils import logging as transformers_logging

        location = self.resolve_reference(reference, what)
        verbosity = transformers_logging.get_verbosity()
        if quiet:
            transformers_logging.set_verbosity_error()
        try:
            return location, self.load_classifier(None, location, what=what)
        finally:
            transformers_logging.set_verbosity(verbosity)

    def load_classifier(self, recipe, model_ref, label_names=None, what="model"):
        from ...loading import load_classifier

        model = load_classifier(model_ref, what=what, auto_class=self.auto_class)
        if label_names is not None:
            self.check_labels(model, label_names, what)
        return model

    def build_student(self, recipe, teacher, label_names, init_layers):
        return build_text_student(recipe.student, teacher, label_names, init_layers, self.auto_class)

    def reference_label_names(self, model_ref) -> list | None:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(model_ref)
        except Exception:  # not readable here: the teacher stage's label check names the problem
            return None
        id2label = getattr(config, "id2label", None) or {}
        names = [str(id2label.get(i, f"LABEL_{i}")) for i in range(len(id2label))]
        return None if not names or all(n.startswith("LABEL_") for n in names) else names

    def reference_depth(self, recipe, model_ref):
        try:
            from transformers import AutoConfig

            return int(AutoConfig.from_pretrained(model_ref).num_hidden_layers)
        except Exception:  # not resolvable without building the model: checked after loading
            return None

    def training_overrides(self, recipe) -> dict:
        return {}
