"""Transfer sets for text distillation: rows the teacher labels (soft targets) and the student learns from.

A recipe's ``data`` section can

- keep only ``labels_per_class`` labelled training rows per class (seeded by ``data.seed``; the low-label regime);
- add an unlabelled ``transfer`` source: a local file or directory, a Hub id, or ``train`` for the training
  texts that ``labels_per_class`` left out (labels in the source are ignored);
- add an ``augment``-ed copy of the labelled training texts (:mod:`hf_spectralkd.augment`).

Transfer rows carry the label ``-100`` (:data:`hf_spectralkd.distillation_trainer.IGNORE_INDEX`): the trainer's CE
term skips them, KD and the frequency term use every row. The teacher fine-tuning and the no-KD baseline train
on the labelled rows only (:func:`hf_spectralkd.sampling.labelled_only`).
"""

from __future__ import annotations

import random

from ...augment import augment_texts
from ...sampling import IGNORE_INDEX, labelled_only
from ..sources import read_rows

__all__ = ["labels_per_class", "load_transfer_texts", "add_transfer_rows", "augmented_rows"]


def labels_per_class(train, per_class: int, seed: int):
    """``(kept, left_out)``: at most ``per_class`` rows of every label of ``train`` (a seeded choice, file order
    kept) and the rows that were not kept."""
    by_label = {}
    for index, label in enumerate(train["label"]):
        by_label.setdefault(label, []).append(index)
    rng = random.Random(seed)
    kept = sorted(i for indices in by_label.values() for i in rng.sample(indices, min(per_class, len(indices))))
    chosen = set(kept)
    return train.select(kept), train.select([i for i in range(len(train)) if i not in chosen])


def load_transfer_texts(section, left_out=None) -> list:
    """The texts of ``data.transfer`` (``section``: the recipe's data section); ``left_out``: the training rows not
    kept by ``labels_per_class`` (the source ``train``)."""
    transfer = section.transfer
    column = transfer.text_column or section.text_column
    if transfer.source == "train":
        if left_out is None:
            raise ValueError("data.transfer.source: 'train' means the training texts that data.labels_per_class "
                             "leaves out; set data.labels_per_class, or name a file, a directory or a Hub id")
        texts = list(left_out[section.text_column])
    else:
        rows = read_rows(transfer.source, transfer.split, what="data.transfer.source")
        if column not in rows.column_names:
            raise ValueError(f"data.transfer.text_column {column!r} not found in {transfer.source!r}: the columns "
                             f"are {rows.column_names}")
        texts = list(rows[column])
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if bad:
        raise ValueError(f"data.transfer: {len(bad)} row(s) of {transfer.source!r} have no text in column {column!r} "
                         f"(first: row {bad[0] + 1}); remove them or choose another text_column")
    if transfer.max_samples is not None and len(texts) > transfer.max_samples:
        rng = random.Random(section.seed)
        texts = [texts[i] for i in sorted(rng.sample(range(len(texts)), transfer.max_samples))]
    return texts


def _unlabelled(texts: list, like, section):
    """A dataset with ``like``'s text column(s) and the label ``-100``, in ``like``'s column order."""
    import datasets

    columns = {section.text_column: texts, "label": [IGNORE_INDEX] * len(texts)}
    if section.text_pair_column:  # a transfer text has no pair: an empty second segment
        columns[section.text_pair_column] = [""] * len(texts)
    features = like.features.copy()
    features["label"] = datasets.Value("int64")
    return datasets.Dataset.from_dict({k: columns[k] for k in like.column_names}, features=features)


def add_transfer_rows(train, texts: list, section):
    """``train`` followed by unlabelled rows of ``texts`` (``label`` becomes a plain integer column)."""
    import datasets

    if not texts:
        return train
    labelled = train.cast_column("label", datasets.Value("int64"))
    return datasets.concatenate_datasets([labelled, _unlabelled(texts, labelled, section)])


def augmented_rows(train, section, mask_token):
    """``train`` followed by ``data.augment`` copies of its labelled texts, as unlabelled rows."""
    labelled = labelled_only(train, column="label")
    source = list(labelled[section.text_column])
    texts = augment_texts(source, section.augment, mask_token=mask_token, exclude=set(source))
    return add_transfer_rows(train, texts, section)
