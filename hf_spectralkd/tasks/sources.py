"""Local data files and ``--data`` arguments: one way to turn a file, a directory or a Hub id into rows.

Every task reads its rows through :func:`read_rows` (text) or its own loader (images); every mistake is a
``ValueError`` naming the option: a missing file, an unsupported format, a malformed or empty file, a Hub id
while the Hub is unreachable.
"""

from __future__ import annotations

import glob
import os

from .validation import check_text_file

__all__ = ["SPLITS", "BUILDERS", "builder_for", "read_data_file", "find_split_file", "read_rows", "sample_rows",
           "finish_splits", "data_card_facts", "training_copies", "data_warnings"]

SPLITS = ("train", "validation", "test")
# local files: extension -> `datasets` packaged builder
BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
FORMATS = "JSON Lines (.jsonl/.json), CSV (.csv) or Parquet (.parquet)"


def builder_for(path: str, what: str = "data file") -> str:
    """The ``datasets`` builder of a local file, from its extension (``.gz`` allowed)."""
    for ext, builder in BUILDERS.items():
        if path.endswith(ext) or path.endswith(ext + ".gz"):
            return builder
    raise ValueError(f"{what}: {path!r} has an unsupported format: use {FORMATS}")


def read_data_file(path: str, what: str = "--data"):
    """One local .jsonl/.json/.csv/.parquet file as a ``datasets.Dataset``; a file that cannot be parsed (malformed
    JSON, an empty file, ...) is a ``ValueError`` naming ``what`` and the file instead of a traceback."""
    import datasets

    builder = builder_for(path, what)
    check_text_file(path, what)  # not UTF-8 / a malformed JSON line: named by byte offset / line number
    verbosity = datasets.logging.get_verbosity()
    # a parse failure is reported once, below, not logged too
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        # by content, not datasets' path+mtime cache key (a rewritten file with its mtime kept is read anew)
        rows = datasets.load_dataset(builder, data_files=literal_data_files({"data": path}), split="data",
                                     cache_dir=content_cache_dir([path]))
    except (ValueError, OSError, StopIteration, datasets.exceptions.DatasetGenerationError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        cause = getattr(exc, "__cause__", None)
        if cause is not None and str(cause):
            reason += f" ({str(cause).splitlines()[0]})"
        raise ValueError(f"{what}: could not read {path!r} as {builder}: {reason}") from exc
    finally:
        datasets.logging.set_verbosity(verbosity)
    if len(rows) == 0:
        raise ValueError(f"{what}: {path!r} has no rows")
    return rows


def literal_data_files(files: dict) -> dict:
    """``data_files`` for ``datasets.load_dataset`` naming exactly these paths: ``datasets`` reads a path as a glob
    pattern, so a folder named ``runs[1]`` or ``data*`` would match other files or none."""
    return {split: glob.escape(path) for split, path in files.items()}


def find_split_file(directory: str, split: str) -> str | None:
    """``<directory>/<split>.<ext>`` for the first supported extension that exists, else None."""
    for ext in BUILDERS:
        path = os.path.join(directory, f"{split}{ext}")  # an exact name ('[' in a folder's name is no pattern)
        if os.path.isfile(path):
            return path
    return None


def looks_local(source: str) -> bool:
    """Whether ``source`` is meant as a local path: Hub dataset ids are ``name`` or ``org/name``."""
    extension = os.path.splitext(source)[1].lower()
    return (extension in BUILDERS or source.startswith((".", "/", "~")) or source.count("/") > 1
            or os.path.exists(os.path.expanduser(source)))


def content_cache_dir(paths) -> str:
    """A ``datasets`` cache folder keyed on the bytes of ``paths``: ``datasets`` keys local files on path and mtime,
    so a file rewritten with its mtime kept would be read as the old rows; a folder per content never is (and no
    cache is deleted, so concurrent runs on the same files do not race)."""
    import datasets

    from ..utils import file_digest, hash_object

    key = hash_object(sorted((os.path.abspath(p), file_digest(p)) for p in paths))
    return os.path.join(datasets.config.HF_DATASETS_CACHE, "hf_spectralkd_by_content", key)


def read_rows(source: str, split: str = "train", what: str = "--data"):
    """The rows of ``split`` of ``source`` as a ``datasets.Dataset``.

    ``source`` is a local file (one split, whatever ``split`` says), a directory holding ``<split>.jsonl`` /
    ``.csv`` / ``.parquet``, or a Hub dataset id (needs the Hub).
    """
    from ..loading import is_offline

    expanded = os.path.expanduser(source)
    if os.path.isdir(expanded):
        path = find_split_file(expanded, split)
        if path is None:
            raise ValueError(f"{what} {source}: the directory has no {split}.jsonl/.csv/.parquet file (set --split or "
                             "pass one file)")
        return read_data_file(path, what)
    if looks_local(source):
        if not os.path.isfile(expanded):
            raise ValueError(f"{what}: the file {source!r} does not exist (no such file or directory)")
        return read_data_file(expanded, what)
    if is_offline():
        raise ValueError(
            f"{what}: {source!r} is not a local file and looks like a Hub dataset id, but the Hub is unreachable "
            "(HF_HUB_OFFLINE=1). Pass a local .jsonl/.json/.csv/.parquet file instead, e.g. "
            "--data hf_spectralkd/data/clinc150/train.jsonl"
        )
    import datasets

    try:
        rows = datasets.load_dataset(source, split=split)
    except ValueError as exc:
        raise ValueError(f"{what}: could not load split {split!r} of {source!r}: {exc}") from exc
    if len(rows) == 0:
        raise ValueError(f"{what}: {source!r} has no rows")
    return rows


def sample_rows(rows, n: int | None, seed: int = 42, in_order: bool = False):
    """``n`` rows of ``rows``: the seeded sample every spectral measurement reads (:func:`sample_dataset`), or the
    first ``n`` with ``in_order``; all rows when ``n`` is None."""
    from ..sampling import sample_dataset

    if n is None:
        return rows
    if in_order:
        return rows.select(range(min(n, len(rows))))
    return sample_dataset(rows, n, seed)


def carve_validation(splits: dict, section) -> dict:
    """A validation split cut from ``train`` (``section.validation_fraction``, stratified when every class has enough
    examples) when the data has none."""
    if "validation" in splits or "train" not in splits:
        return splits
    train = splits["train"]
    try:
        parts = train.train_test_split(test_size=section.validation_fraction, seed=section.seed,
                                       stratify_by_column="label")
    except ValueError:
        parts = train.train_test_split(test_size=section.validation_fraction, seed=section.seed)
    return {**splits, "train": parts["train"], "validation": parts["test"]}


def limit_splits(splits: dict, section) -> dict:
    """``section.max_train_samples`` / ``max_eval_samples`` rows of each split (a seeded shuffle, ``section.seed``)."""
    limits = {"train": section.max_train_samples, "validation": section.max_eval_samples,
              "test": section.max_eval_samples}
    out = dict(splits)
    for split, limit in limits.items():
        if split in out and limit is not None and limit < len(out[split]):
            out[split] = out[split].shuffle(seed=section.seed).select(range(limit))
    return out


DATA_CARD = "README.md"  # a data folder's dataset card: its YAML front matter holds the data's facts
DATA_CARD_BYTES = 1 << 20  # the front matter is read from the card's first MiB
CARD_FACTS = ("name", "license", "citation", "hub_id")


def _card_facts(directory: str) -> dict:
    """The dataset facts of the card ``<directory>/README.md``: the ``hf_spectralkd:`` mapping of its YAML front
    matter (``name``, ``license``, ``citation``, ``hub_id``), else a Hub dataset card's own ``pretty_name`` and
    ``license``; {} without a card or front matter (a card that cannot be read states no facts)."""
    import yaml

    path = os.path.join(directory, DATA_CARD)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(DATA_CARD_BYTES)
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        meta = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    if not isinstance(meta, dict):
        return {}
    own = meta.get("hf_spectralkd")
    if isinstance(own, dict):
        facts = {key: own.get(key) for key in CARD_FACTS}
    else:
        license = meta.get("license")
        facts = {"name": meta.get("pretty_name"),
                 "license": ", ".join(map(str, license)) if isinstance(license, list) else license}
    return {key: str(value).strip() for key, value in facts.items() if value not in (None, "", [])}


def data_card_facts(files: dict) -> dict:
    """The facts (``name``, ``license``, ``citation``, ``hub_id``) of the data the run read, from the dataset card
    beside its files (:func:`_card_facts`): {} when a file has none, or when files of different folders say
    different things (the facts of one data set are never given to another)."""
    folders = {os.path.dirname(os.path.abspath(path)) for split, path in files.items()
               if split in SPLITS and isinstance(path, str) and os.path.isfile(path)}
    facts = [_card_facts(folder) for folder in sorted(folders)]
    if not facts or any(f != facts[0] for f in facts[1:]):
        return {}
    return facts[0]


def finish_splits(splits: dict, section, files: dict, label_names: list, need_test: bool, columns: dict,
                  carved: bool = False) -> tuple:
    """``(DatasetDict, info)``: the steps every labelled loader ends with: a test split when the run needs one,
    ``max_train_samples`` / ``max_eval_samples``, and the dataset facts for results.json (``columns``: the names of
    the task's columns, e.g. ``text_column`` / ``label_column``; ``carved``: the validation split was cut from
    train, see :func:`carve_validation`).

    The facts (``name``, ``license``, ``citation`` and the Hub id the card's ``datasets`` names) are the recipe's
    ``data.name`` / ``license`` / ``citation`` when it sets them, else those of the data the run read: a Hub id
    source, the dataset card beside the local files (:func:`data_card_facts`); else empty (the name: the folder's
    or file's)."""
    import datasets

    if need_test and "test" not in splits:
        raise ValueError(
            f"data {section.source or section.train_file!r} has no test split: set data.test_file, or evaluate on the "
            "validation split with evaluation.split=validation"
        )
    splits = limit_splits(splits, section)
    source = section.source or files.get("train")
    card = data_card_facts(files)
    info = {
        "name": section.name or card.get("name") or (os.path.basename(os.path.normpath(source)) if source else None),
        "source": source,
        "num_labels": len(label_names),
        "splits": {k: len(v) for k, v in splits.items()},
        **columns,
        "license": section.license or card.get("license"),
        "citation": section.citation or card.get("citation"),
    }
    if card.get("hub_id"):
        info["hub_id"] = card["hub_id"]
    if carved:
        info["validation_carved"] = {"from": "train", "fraction": section.validation_fraction, "seed": section.seed}
    return datasets.DatasetDict(splits), info


LEAKAGE_EXAMPLES = 3  # copied rows quoted in results.json and the warning


def _row_key(values) -> tuple:
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def training_copies(splits, columns) -> dict:
    """The rows of each evaluation split (validation, test) whose input (the values of ``columns``: the text and
    text pair, or the word list) is exactly that of a training row, labelled or transfer: ``{split: {"rows": n,
    "of": rows of the split, "examples": [the first few inputs]}}``, splits without a copy left out. A model that
    trained on those inputs is scored partly on memory."""
    columns = [c for c in columns if c]
    train = splits.get("train") if hasattr(splits, "get") else None
    if train is None or not columns:
        return {}
    seen = set(map(_row_key, zip(*(train[c] for c in columns), strict=True)))
    found = {}
    for split in ("validation", "test"):
        if split not in splits:
            continue
        rows = splits[split]
        copies = [key for key in map(_row_key, zip(*(rows[c] for c in columns), strict=True)) if key in seen]
        if copies:
            examples = [key[0] if len(key) == 1 else list(key) for key in copies[:LEAKAGE_EXAMPLES]]
            found[split] = {"rows": len(copies), "of": len(rows), "examples": examples}
    return found


def data_warnings(info: dict) -> list:
    """Plain-language warnings about the data a run read (its ``info``): evaluation rows that are copies of training
    rows (:func:`training_copies`, ``info["leakage"]``)."""
    warnings = []
    for split, found in (info.get("leakage") or {}).items():
        shown = ", ".join(repr(e if isinstance(e, str) else " ".join(map(str, e)))[:80] for e in found["examples"])
        more = ", ..." if found["rows"] > len(found["examples"]) else ""
        warnings.append(
            f"leakage: {found['rows']} of the {found['of']} {split} rows are exact copies of training rows (e.g. "
            f"{shown}{more}): on those the {split} score measures memory, not generalisation; remove them from the "
            f"{split} data or from the training data")
    return warnings
