"""Text-classification data through ``datasets``: Hub ids or local JSON Lines / CSV / Parquet files.

Every mistake is found before any training: a missing file, a missing column (the existing ones are
listed), an empty split, test labels that the training split does not have, a Hub id while offline.
Labels are mapped to ids through the sorted label names of the training split (a ``ClassLabel`` feature
keeps its own names); the mapping is what goes into ``id2label`` / ``label2id`` of the models. CSV labels are
read as written (``007`` and ``7`` are two labels; a column of plain integers is integer ids), and training labels
that differ only by case or surrounding whitespace are an error unless ``data.label_names`` lists them.
"""

from __future__ import annotations

import os
import re

from ...loading import is_offline
from ..sources import (
    builder_for,
    carve_validation,
    content_cache_dir,
    find_split_file,
    finish_splits,
    literal_data_files,
)
from ..validation import check_labelled_rows, check_text_file

__all__ = ["load_text_data", "is_local_source"]


def _split_names(section) -> tuple:
    return (("train", section.train_split), ("validation", section.validation_split), ("test", section.test_split))


def _local_files(section) -> dict:
    """Split name -> local file, from train_file/validation_file/test_file or a directory/file ``source``."""
    files = {"train": section.train_file, "validation": section.validation_file, "test": section.test_file}
    source = section.source
    if source and os.path.isdir(source):
        for split, name in _split_names(section):
            if files[split] is None:
                files[split] = find_split_file(source, name)
        if files["train"] is None:
            raise ValueError(
                f"data.source {source!r} is a directory without a {section.train_split}.jsonl/.csv/.parquet file; "
                "name its files train/validation/test or set data.train_file"
            )
    elif source and os.path.isfile(source) and files["train"] is None:
        files["train"] = source
    files = {k: v for k, v in files.items() if v is not None}
    for split, path in files.items():
        if not os.path.isfile(path):
            raise ValueError(f"data: the {split} file {path!r} does not exist")
        builder_for(path, f"data: the {split} file")
        if _is_blank(path):
            raise ValueError(f"data: the {split} split ({path}) is empty")
        # UTF-8, one JSON object per line, labels and texts: named by file and line before datasets reads it
        check_text_file(path, f"data: the {split} file", section.label_column,
                        (section.text_column, section.text_pair_column))
    return files


def _is_blank(path: str) -> bool:
    if os.path.getsize(path) == 0:
        return True
    if path.endswith((".jsonl", ".json", ".csv")):
        with open(path, "rb") as handle:
            return not handle.read(1 << 16).strip()
    return False


def is_local_source(section) -> bool:
    source = section.source
    if section.train_file or section.validation_file or section.test_file:
        return True
    return source is not None and (os.path.exists(source) or source.startswith((".", "/", "~")))


def _load_local(section):
    import datasets

    if section.source and not (section.train_file or section.test_file) and not os.path.exists(section.source):
        raise ValueError(f"data.source {section.source!r} does not exist (a local file or directory was expected)")
    files = _local_files(section)
    builders = {builder_for(p) for p in files.values()}
    if len(builders) > 1:
        raise ValueError(f"data files mix formats ({', '.join(sorted(builders))}): use one format for every split")
    builder = builders.pop()
    # CSV label cells as written (pandas would read 007 and 7 as the same number): see _csv_labels; text cells as
    # written too (a column of numbers would be read as numbers, and differ in type from the other splits')
    cells = {c: _csv_cell for c in (section.label_column, section.text_column, section.text_pair_column) if c}
    options = {"converters": cells} if builder == "csv" else {}
    try:
        # read by content: datasets' cache is keyed on path and mtime, so a file rewritten with its mtime kept
        # would be read as the old rows while the run's own fingerprint (its bytes) says it changed
        raw = datasets.load_dataset(builder, data_files=literal_data_files(files),
                                    cache_dir=content_cache_dir(files.values()), **options)
    except (ValueError, OSError, datasets.exceptions.DatasetGenerationError) as exc:
        raise ValueError(f"could not read the data files {files}: {str(exc).splitlines()[0]}") from exc
    return (_csv_labels(raw, section.label_column) if builder == "csv" else raw), files


PLAIN_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _csv_cell(value: str):
    """A CSV label or text cell as written (an empty cell is a missing label or text)."""
    return value if value != "" else None


def _csv_labels(raw, column: str):
    """CSV labels, read as text: integer class ids when every label of every split is a plain integer (``0``, ``7``,
    ``12``: no leading zero, no sign but ``-``, no space or decimal point), as in a JSON file of numbers; label names
    otherwise, kept as written, so that ``007`` and ``7`` are two labels."""
    import datasets

    values = [v for split in raw.values() if column in split.column_names for v in split[column] if v is not None]
    if not values or not all(PLAIN_INTEGER.fullmatch(v) for v in values):
        return raw
    return datasets.DatasetDict({name: split.cast_column(column, datasets.Value("int64"))
                                 if column in split.column_names else split for name, split in raw.items()})


def load_raw_splits(section):
    import datasets

    if is_local_source(section):
        return _load_local(section)
    source = section.source
    if is_offline() or os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ValueError(
            f"data.source {source!r} is not a local file or directory and looks like a Hub dataset id, but the Hub is "
            "unreachable (HF_HUB_OFFLINE=1). Download it elsewhere (`hf download --repo-type dataset ...` or "
            "`datasets.load_dataset(...).to_json(...)`) and point data.source or data.train_file/test_file at the "
            "local copy"
        )
    try:
        raw = datasets.load_dataset(source, section.config_name)
    except Exception as exc:  # the Hub's errors are many; say which dataset failed
        raise ValueError(f"could not load the Hub dataset {source!r} (config {section.config_name!r}): {exc}") from exc
    renamed = {split: raw[name] for split, name in _split_names(section) if name in raw}
    return datasets.DatasetDict(renamed), {"hub": source}


def _check_columns(raw, files, section) -> None:
    columns = [c for c in (section.text_column, section.text_pair_column, section.label_column) if c]
    for split, dataset in raw.items():
        missing = [c for c in columns if c not in dataset.column_names]
        if missing:
            where = files.get(split, f"split {split!r} of {section.source}")
            raise ValueError(
                f"data: column(s) {', '.join(repr(m) for m in missing)} not found in {where}; the columns are "
                f"{', '.join(dataset.column_names)} (set data.text_column / data.label_column)"
            )
        if len(dataset) == 0:
            raise ValueError(f"data: the {split} split ({files.get(split, section.source)}) is empty")


def _label_names(raw, section, fixed, to_name) -> list:
    if fixed is not None:
        return fixed
    if to_name is not None:
        return [to_name[i] for i in range(len(to_name))]
    values = sorted(set(raw["train"][section.label_column]), key=lambda v: (str(type(v)), v))
    return [str(v) for v in values]


def _label_key(name: str) -> str:
    """What two labels that differ only by case or surrounding whitespace have in common."""
    return name.strip().casefold()


def _check_near_duplicates(train, section, where: str) -> None:
    """Labels of the training split that differ only by case or surrounding whitespace (``alarm`` / ``Alarm``,
    ``apr`` / ``apr ``) are an error: as written they would be separate classes, each with part of the rows. Labels
    that really are distinct classes are listed in ``data.label_names`` (then this check is not made)."""
    rows = {}
    for i, value in enumerate(train[section.label_column]):
        rows.setdefault(str(value), []).append(i + 1)
    groups = {}
    for name in rows:
        groups.setdefault(_label_key(name), []).append(name)
    clashes = [sorted(names) for names in groups.values() if len(names) > 1]
    if not clashes:
        return

    def described(name):
        found = rows[name]
        return f"{name!r} ({len(found)} row{'s' if len(found) > 1 else ''}, first row {found[0]})"

    shown = "; ".join(" / ".join(described(n) for n in names) for names in sorted(clashes)[:3])
    raise ValueError(
        f"data: {where}, column {section.label_column!r}: {len(clashes)} group(s) of labels differ only by case or "
        f"surrounding whitespace: {shown}{'; ...' if len(clashes) > 3 else ''}. As written each would be a class of "
        "its own; write each label one way in the data, or, if they are different classes, list every label in "
        "data.label_names"
    )


def _check_known_labels(raw, section, index, fixed, to_name) -> None:
    keys = {_label_key(name): name for name in index}
    for split, dataset in raw.items():
        if split == "train" and fixed is None:
            continue
        values = dataset[section.label_column]
        names = {to_name[v] if to_name is not None and isinstance(v, int) else str(v) for v in values}
        unknown = sorted(names - set(index))
        if unknown:
            shown = ", ".join(repr(u) + (f" (the {'training split' if fixed is None else 'model'} has "
                                         f"{keys[_label_key(u)]!r})" if _label_key(u) in keys else "")
                              for u in unknown[:5])
            raise ValueError(
                f"data: the {split} split has {len(unknown)} label(s) that the "
                f"{'training split' if fixed is None else 'model'} does not have "
                f"({shown}{', ...' if len(unknown) > 5 else ''}); a classifier cannot predict unseen labels"
            )


def _encode_labels(raw, section, label_names, to_name) -> dict:
    import datasets

    index = {name: i for i, name in enumerate(label_names)}

    def encode(batch):
        labels = batch[section.label_column]
        if to_name is not None:
            return {"label": [index[to_name[v]] for v in labels]}
        return {"label": [index[str(v)] for v in labels]}

    keep = [c for c in (section.text_column, section.text_pair_column) if c]
    splits = {}
    for split, dataset in raw.items():
        drop = [c for c in dataset.column_names if c not in keep]
        splits[split] = dataset.map(encode, batched=True, remove_columns=drop, desc=f"encoding {split} labels")
        splits[split] = splits[split].cast_column("label", datasets.ClassLabel(names=label_names))
    return splits


def load_text_data(section, need_test: bool = True):
    """Load, check and label-encode the splits. Returns ``(DatasetDict, label_names, info)``.

    The splits keep ``text_column`` (and ``text_pair_column``) and get an integer ``label`` column.
    """
    import datasets

    raw, files = load_raw_splits(section)
    fixed = list(section.label_names) if getattr(section, "label_names", None) else None
    if "train" not in raw and fixed is None:
        raise ValueError(f"data {section.source or section.train_file!r} has no training split "
                         f"(found {', '.join(raw) or 'none'})")
    _check_columns(raw, files, section)
    for split, rows in raw.items():  # the labelled splits (a transfer set is added later, without labels)
        check_labelled_rows(rows, files.get(split, f"the {split} split of {section.source}"), section.label_column,
                            (section.text_column, section.text_pair_column),
                            require_classes=2 if split == "train" else 0)
    reference = "train" if "train" in raw else next(iter(raw))
    feature = raw[reference].features[section.label_column]
    to_name = dict(enumerate(feature.names)) if isinstance(feature, datasets.ClassLabel) else None
    label_names = _label_names(raw, section, fixed, to_name)
    if fixed is None and to_name is None and "train" in raw:
        _check_near_duplicates(raw["train"], section, files.get("train", f"the train split of {section.source}"))
    _check_known_labels(raw, section, {name: i for i, name in enumerate(label_names)}, fixed, to_name)
    splits = carve_validation(_encode_labels(raw, section, label_names, to_name), section)
    splits, info = finish_splits(splits, section, files, label_names, need_test,
                                 {"text_column": section.text_column, "label_column": section.label_column},
                                 carved="validation" not in raw)
    return splits, label_names, info
