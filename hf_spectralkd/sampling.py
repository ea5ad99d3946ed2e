"""The one seeded sample of a dataset that layer selection, analysis and the dynamics callback read.

Training files are often sorted by label (CLINC150 is): their first rows would cover only a few classes,
so every spectral measurement reads a seeded random sample instead. The trainer's automatic selection and
the recipe pipeline's analysis stage draw the same sample for the same seed.
"""

from __future__ import annotations

import itertools
import random

import torch

__all__ = ["sample_indices", "sample_dataset", "IGNORE_INDEX", "has_label", "labelled_only", "count_labelled"]

# the label of a transfer-set row that has none (the Hugging Face convention): CE skips it, KD and L_freq use it
IGNORE_INDEX = -100
# rows of a streaming dataset a sample is drawn from (a seeded shuffle buffer)
SHUFFLE_BUFFER = 10_000


def sample_indices(size: int, n: int | None, seed: int = 0) -> list:
    """A seeded random sample of ``n`` of ``range(size)``, in ascending order (all of it when ``n >= size``)."""
    if n is None or n >= size:
        return list(range(size))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(size, generator=generator)[:n].tolist())


def sample_dataset(dataset, n: int | None, seed: int = 0):
    """``n`` rows of ``dataset`` drawn by :func:`sample_indices`.

    A ``datasets.Dataset`` stays one (``select``); any other map-style dataset becomes a
    ``torch.utils.data.Subset``. An iterable (streaming) dataset has no length to sample from: its rows go through
    a seeded shuffle buffer of ``max(SHUFFLE_BUFFER, n)`` rows (``datasets.IterableDataset.shuffle``; a torch
    ``IterableDataset`` is sampled from its first that many rows), so a label-sorted stream does not give the first
    few classes only; the sample is a list.
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        datasets = None
    if datasets is not None and isinstance(dataset, datasets.Dataset):
        return dataset.select(sample_indices(len(dataset), n, seed))
    iterable_types = (torch.utils.data.IterableDataset,)
    if datasets is not None:
        iterable_types += (datasets.IterableDataset,)
    if isinstance(dataset, iterable_types):
        if n is None:
            return list(dataset)
        buffer = max(SHUFFLE_BUFFER, n)
        if datasets is not None and isinstance(dataset, datasets.IterableDataset):
            return list(itertools.islice(dataset.shuffle(seed=seed, buffer_size=buffer), n))
        rows = list(itertools.islice(iter(dataset), buffer))
        keep = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
        return [rows[i] for i in keep]
    return torch.utils.data.Subset(dataset, sample_indices(len(dataset), n, seed))


def has_label(label) -> bool:
    """Whether a row's label is one: not ``IGNORE_INDEX``; a per-token label list (token classification) has one
    when any position is labelled (an unlabelled transfer row is all ``IGNORE_INDEX``)."""
    if isinstance(label, (list, tuple)):
        return any(value != IGNORE_INDEX for value in label)
    return label != IGNORE_INDEX


def labelled_only(dataset, column: str = "labels"):
    """The rows of ``dataset`` that have a label (``dataset`` itself when no row is ``IGNORE_INDEX``)."""
    if column not in dataset.column_names:
        return dataset
    keep = [i for i, label in enumerate(dataset[column]) if has_label(label)]
    return dataset if len(keep) == len(dataset) else dataset.select(keep)


def count_labelled(dataset, column: str = "labels") -> int:
    """How many rows of ``dataset`` have a label."""
    if column not in dataset.column_names:
        return len(dataset)
    return sum(1 for label in dataset[column] if has_label(label))
