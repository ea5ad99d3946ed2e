"""``token-classification``: transformers token classifiers (NER, slot filling) on word lists with BIO tags.

``data`` reads and checks the sentences (JSON Lines / JSON / CSV / Parquet with a word-list and a tag-list column,
CoNLL-style files, Hub datasets), ``processing`` aligns tags with sub-words as transformers' ``run_ner.py`` does
and adds the ``kd_mask`` column the distillation reads. The models are ``AutoModelForTokenClassification``; the
teacher, the checks of the models and the students (copied teacher blocks, pretrained, from a config) are the text
task's, with this auto class. Metrics: entity-level precision / recall / F1 (``seqeval``) and token accuracy; the
task's primary metric is ``f1``.
"""

from __future__ import annotations

import random

from ..base import Task, TaskData
from ..registry import register_task
from ..sources import training_copies
from ..text import TextClassificationTask
from . import processing
from .data import load_token_data, read_unlabelled
from .processing import align_labels, begin_to_inside, token_collator, tokenize_splits, tokenize_words

__all__ = ["TokenClassificationTask", "align_labels", "begin_to_inside", "tokenize_words", "load_token_data"]

PREFIX_SPACE_MODELS = ("bloom", "gpt2", "roberta", "deberta")  # run_ner.py: their tokenizers need add_prefix_space


@register_task("token-classification")
class TokenClassificationTask(TextClassificationTask):
    """Token classification with a transformers ``AutoModelForTokenClassification``."""

    auto_class = "AutoModelForTokenClassification"

    def compute_metrics(self, label_names):
        from ...metrics import token_metrics

        return token_metrics(label_names)

    def tokenize(self, dataset, tokenizer, text_column="tokens", text_pair_column=None, max_length=128, **options):
        """The task's one tokeniser (:func:`hf_spectralkd.tasks.tokens.processing.tokenize_words`) over the word lists
        of ``text_column`` of ``dataset`` (a ``datasets.Dataset`` or a list of dicts; a string is split on
        whitespace), without labels."""
        return processing.tokenize_words(word_rows(dataset, text_column), tokenizer, max_length, **options)

    def load_splits(self, section, need_test: bool = True) -> TaskData:
        splits, label_names, info = load_token_data(section, need_test=need_test)
        return TaskData(splits=splits, label_names=label_names, info=info)

    def load_data(self, recipe) -> TaskData:
        """The labelled splits, then ``data.transfer``: unlabelled sentences (word-split as the labelled ones)
        appended to the training split with every tag -100."""
        data = Task.load_data(self, recipe)
        section = recipe.data
        train = data.splits["train"]
        data.info["labelled_train_rows"] = len(train)
        if section.transfer is not None:
            sentences = self.transfer_sentences(section)
            train = add_unlabelled(train, sentences)
            data.info["transfer_rows"] = len(sentences)
        data.splits["train"] = train
        data.info["splits"]["train"] = len(train)
        data.info["leakage"] = training_copies(data.splits, ("tokens",))  # (the splits' own word-list column)
        return data

    @staticmethod
    def transfer_sentences(section) -> list:
        """The word lists of ``data.transfer`` (at most ``max_samples``, a seeded choice in file order)."""
        transfer = section.transfer
        if transfer.source == "train":
            raise ValueError("data.transfer.source: 'train' (the rows data.labels_per_class leaves out) is for "
                             "text-classification; name a file, a directory or a Hub id of unlabelled sentences")
        column = transfer.text_column or section.tokens_column
        sentences = read_unlabelled(transfer.source, transfer.split, column)
        if transfer.max_samples is not None and len(sentences) > transfer.max_samples:
            rng = random.Random(section.seed)
            sentences = [sentences[i] for i in sorted(rng.sample(range(len(sentences)), transfer.max_samples))]
        return sentences

    def prepare_datasets(self, recipe, data: TaskData, processor):
        return tokenize_splits(data.splits, processor, recipe.data, data.label_names)

    def prepare_splits(self, splits, processor, section):
        return tokenize_splits(splits, processor, section)

    def data_collator(self, processor):
        return token_collator(processor)

    def load_processor(self, recipe, model_ref):
        """The fast tokenizer saved with ``model_ref`` (``add_prefix_space`` for the models whose tokenizers need it
        on pre-split words, as ``run_ner.py`` does)."""
        from transformers import AutoConfig, AutoTokenizer

        options = {}
        try:
            if AutoConfig.from_pretrained(model_ref).model_type in PREFIX_SPACE_MODELS:
                options["add_prefix_space"] = True
        except (OSError, ValueError):
            pass  # the tokenizer load below names the problem
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_ref, **options)
        except (OSError, ValueError) as exc:
            raise ValueError(f"could not load a tokenizer from {model_ref!r}: {str(exc).splitlines()[0]}") from exc
        processing._check_fast(tokenizer)
        return tokenizer

    def analysis_loader(self, rows, processor, batch_size: int = 32, text_column: str = "tokens",
                        text_pair_column=None, max_length=128):
        """Batches of padded token ids over raw ``rows`` (word lists, or sentences split on whitespace)."""
        from torch.utils.data import DataLoader

        encoded = self.tokenize(rows, processor, text_column, max_length=max_length, desc="tokenizing for analysis")
        return DataLoader(encoded, batch_size=batch_size, shuffle=False, collate_fn=token_collator(processor))

    def check_rows(self, rows, text_column: str = "tokens", text_pair_column=None, where: str = "the data") -> None:
        if text_column not in rows.column_names:
            raise ValueError(f"--text-column {text_column!r} (the word lists) not found in {where}: the columns are "
                             f"{list(rows.column_names)}")

    def load_classifier(self, recipe, model_ref, label_names=None, what="model"):
        """A saved token classifier; a checkpoint of another head (a sequence classifier) is refused, since its
        weights would load into a token head without a word."""
        from transformers import AutoConfig

        try:
            architectures = AutoConfig.from_pretrained(model_ref).architectures or []
        except (OSError, ValueError, TypeError):
            architectures = []
        heads = [a for a in architectures if not a.endswith("ForTokenClassification")]
        if architectures and len(heads) == len(architectures) and any("For" in a for a in heads):
            raise ValueError(f"{what} {model_ref!r} is a {architectures[0]}, not a token classifier "
                             "(a ...ForTokenClassification); the token-classification task fine-tunes teacher.base or "
                             "reads a token classifier as teacher.model")
        return super().load_classifier(recipe, model_ref, label_names, what)


def word_rows(rows, column: str = "tokens"):
    """A ``datasets.Dataset`` with the word lists of ``column`` of ``rows`` as ``tokens`` (strings split on
    whitespace, as the labelled words are split)."""
    import datasets

    values = rows[column] if isinstance(rows, datasets.Dataset) else [row[column] for row in rows]
    return datasets.Dataset.from_dict({"tokens": [v.split() if isinstance(v, str) else list(v) for v in values]})


def add_unlabelled(train, sentences: list):
    """``train`` followed by the word lists ``sentences`` as unlabelled rows (every tag -100)."""
    import datasets

    from ...sampling import IGNORE_INDEX

    if not sentences:
        return train
    rows = datasets.Dataset.from_dict({"tokens": sentences, "tags": [[IGNORE_INDEX] * len(s) for s in sentences]},
                                      features=train.features)
    return datasets.concatenate_datasets([train, rows])
