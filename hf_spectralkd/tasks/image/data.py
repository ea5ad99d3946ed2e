"""Image data through ``datasets``: an imagefolder directory, a Hub dataset with an ``Image`` column, or
scikit-learn's bundled digits (``sklearn:digits``), label-encoded like the text task's data."""

from __future__ import annotations

import os

from ..sources import carve_validation, limit_splits

__all__ = ["DIGITS_SOURCE", "load_image_data", "image_column"]

DIGITS_SOURCE = "sklearn:digits"
DIGITS_LICENSE = "BSD-3-Clause (scikit-learn; UCI Optical Recognition of Handwritten Digits)"


def _digits_dataset(seed: int):
    """scikit-learn's digits as a ``DatasetDict`` with an ``Image`` column (8x8 'L' images, 0..255)."""
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(int)
    index = np.arange(len(labels))
    train_idx, rest = train_test_split(index, test_size=0.4, random_state=seed, stratify=labels)
    val_idx, test_idx = train_test_split(rest, test_size=0.5, random_state=seed, stratify=labels[rest])
    names = [str(i) for i in range(10)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def build(ids):
        return datasets.Dataset.from_dict(
            {"image": [Image.fromarray(pixels[i], mode="L") for i in ids], "label": [int(labels[i]) for i in ids]},
            features=features,
        )

    return datasets.DatasetDict({"train": build(train_idx), "validation": build(val_idx), "test": build(test_idx)})


def load_raw_splits(section):
    import datasets

    source = section.source
    if source == DIGITS_SOURCE:
        return _digits_dataset(section.seed)
    if not source:
        raise ValueError("data.source is required for image-classification (an imagefolder directory, a Hub id or "
                         "sklearn:digits)")
    if source.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(source)):
        raise ValueError(
            f"data.source: the directory {source!r} does not exist (expected an imagefolder: train/<label>/*.jpg, "
            "val/<label>/..., optionally test/)"
        )
    if os.path.isdir(os.path.expanduser(source)):
        raw = datasets.load_dataset("imagefolder", data_dir=os.path.expanduser(source))
    else:
        from ...loading import is_offline

        if is_offline():
            raise ValueError(
                f"data.source {source!r} is neither a local imagefolder directory nor {DIGITS_SOURCE!r}, and the Hub "
                "is unreachable (HF_HUB_OFFLINE=1): give the local path of the images (train/<label>/*.jpg, val/...)"
            )
        raw = datasets.load_dataset(source, section.config_name)
    renames = {section.train_split: "train", section.validation_split: "validation", section.test_split: "test",
               "val": "validation"}
    out = {}
    for split, dataset in raw.items():
        name = renames.get(split, split)
        if name in ("train", "validation", "test") and name not in out:
            out[name] = dataset
    return datasets.DatasetDict(out)


def image_column(dataset) -> str:
    """The name of the first ``datasets.Image`` column of ``dataset``."""
    import datasets

    columns = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    if not columns:
        raise ValueError(
            f"data: no image column (a datasets.Image feature) among the columns {', '.join(dataset.column_names)}; "
            "load the images as an imagefolder or cast the column with datasets.Image()"
        )
    return columns[0]


def _check_columns(raw, section, column: str) -> None:
    for split, dataset in raw.items():
        missing = [c for c in (column, section.label_column) if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"data: column(s) {', '.join(map(repr, missing))} not found in split {split!r} of {section.source}; "
                f"the columns are {', '.join(dataset.column_names)} (set data.label_column)"
            )
        if len(dataset) == 0:
            raise ValueError(f"data: the {split} split of {section.source} is empty")


def _label_names(raw, section) -> list:
    import datasets

    fixed = getattr(section, "label_names", None)
    if fixed:  # the label order of an already trained model (evaluation)
        return [str(n) for n in fixed]
    feature = raw["train"].features[section.label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return sorted({str(v) for v in raw["train"][section.label_column]})


def _encode_labels(raw, section, column: str, label_names: list) -> dict:
    import datasets

    feature = raw["train"].features[section.label_column]
    plain = not isinstance(feature, datasets.ClassLabel)
    index = {name: i for i, name in enumerate(label_names)}
    splits = {}
    for split, dataset in raw.items():
        split_feature = dataset.features[section.label_column]
        values = dataset[section.label_column]
        names = [split_feature.names[v] if isinstance(split_feature, datasets.ClassLabel) else str(v) for v in values]
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ValueError(
                f"data: the {split} split has label(s) the training split does not have "
                f"({', '.join(map(repr, unknown[:5]))})"
            )
        dataset = dataset.select_columns([column, section.label_column])
        if section.label_column != "label" or plain or split_feature != feature or label_names != list(feature.names):
            dataset = dataset.remove_columns(section.label_column).add_column("label", [index[n] for n in names])
        splits[split] = dataset.cast_column("label", datasets.ClassLabel(names=label_names))
    return splits


def load_image_data(section, need_test: bool = True):
    """Load, check and label-encode the image splits. Returns ``(DatasetDict, label_names, info)``: each split
    keeps its image column and an integer ``label`` (``ClassLabel``) column."""
    import datasets

    raw = load_raw_splits(section)
    if "train" not in raw:
        raise ValueError(f"data {section.source!r} has no training split (found {', '.join(raw) or 'none'})")
    column = image_column(raw["train"])
    _check_columns(raw, section, column)
    label_names = _label_names(raw, section)
    splits = carve_validation(_encode_labels(raw, section, column, label_names), section)
    if need_test and "test" not in splits:
        raise ValueError(
            f"data {section.source!r} has no test split: add a test/ folder, or evaluate on the validation split with "
            "evaluation.split=validation (ImageNet's val/ is the usual test set)"
        )
    splits = limit_splits(splits, section)
    source = section.source
    default_name = "digits (scikit-learn)" if source == DIGITS_SOURCE else os.path.basename(os.path.normpath(source))
    info = {
        "name": section.name or default_name,
        "source": source,
        "num_labels": len(label_names),
        "splits": {k: len(v) for k, v in splits.items()},
        "text_column": column,  # the input column (results.json key shared with text)
        "image_column": column,
        "label_column": section.label_column,
        "license": section.license or (DIGITS_LICENSE if source == DIGITS_SOURCE else None),
        "citation": section.citation,
    }
    if "validation" not in raw:  # (hf-spectralkd evaluate --split validation refuses carved rows)
        info["validation_carved"] = {"from": "train", "fraction": section.validation_fraction, "seed": section.seed}
    return datasets.DatasetDict(splits), label_names, info
