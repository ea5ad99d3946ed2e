"""Token-classification data: a word list and a tag list per sentence, read and checked before any work.

Formats (``data.source`` a directory of ``train`` / ``validation`` / ``test`` files, one file, ``data.train_file``
/ ``validation_file`` / ``test_file``, or a Hub dataset id):

- JSON Lines / JSON / CSV / Parquet with a word-list column (``data.tokens_column``, default ``tokens``) and a tag-list
  column (``data.tags_column``, default ``tags``); a CSV cell holds a JSON list or space-separated words / tags;
- CoNLL-style files (``.conll``, ``.iob``, ``.iob2``, ``.bio``, ``.txt``): one token a line, the word in the first
  whitespace-separated field and its tag in the last, a blank line between sentences, ``-DOCSTART-`` lines skipped.

Every mistake names the file, the line (the row for Parquet and Hub data) and the column: a missing or empty word
list, a tag list whose length differs from the word list, a validation/test tag that the training split never has
(unless ``data.unseen_tags: keep``). An ``I-`` tag that follows neither a ``B-`` nor an ``I-`` of its type is a
warning (seqeval then starts an entity there). Tags become ids through the sorted tag set of the training split.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import warnings
from dataclasses import dataclass

from ..sources import BUILDERS, carve_validation, finish_splits
from ..validation import check_text_file

__all__ = ["CONLL_EXTENSIONS", "Sentence", "Rows", "load_token_data", "read_sentences", "read_unlabelled",
           "check_sentences", "bio_warnings"]

CONLL_EXTENSIONS = (".conll", ".iob", ".iob2", ".bio", ".txt")
TABLE_EXTENSIONS = tuple(BUILDERS)  # .jsonl .json .csv .parquet .pq
DOCSTART = "-DOCSTART-"
SHOWN = 5  # unseen tags / BIO problems quoted in a message
VALIDATION_NAMES = ("validation", "valid", "dev")  # a directory's validation file (data.validation_split default)


@dataclass
class Sentence:
    words: object  # list of words (checked by check_sentences)
    tags: object  # list of tags, or None for unlabelled sentences
    line: int  # 1-based line of the sentence (its first token in CoNLL files), or row for Parquet / Hub data
    lines: list | None = None  # CoNLL: the line of each word


@dataclass
class Rows:
    """The sentences of one split, and how messages name where they came from."""

    where: str  # the file, or "the train split of <hub id>"
    unit: str  # "line" or "row"
    sentences: list
    tokens_column: str  # the column names as messages show them
    tags_column: str
    conll: bool = False

    def at(self, sentence: Sentence, column: str, word: int | None = None) -> str:
        """``data: <where>, line N, column ...`` for ``sentence`` (at ``word``, 0-based, when given)."""
        line = sentence.lines[word] if word is not None and sentence.lines else sentence.line
        if self.conll:
            named = "column 1 (the word)" if column == "tokens" else "the last column (the tag)"
        else:
            named = f"column {self.tokens_column if column == 'tokens' else self.tags_column!r}"
        return f"data: {self.where}, {self.unit} {line}, {named}"


# ---------------------------------------------------------------------------------------------- files
def _stem(path: str) -> str:
    return path[:-3] if path.endswith(".gz") else path


def is_conll(path: str) -> bool:
    return _stem(path).lower().endswith(CONLL_EXTENSIONS)


def _check_format(path: str, what: str) -> None:
    if not (is_conll(path) or _stem(path).lower().endswith(TABLE_EXTENSIONS)):
        raise ValueError(f"{what}: {path!r} has an unsupported format: use JSON Lines (.jsonl/.json), CSV (.csv), "
                         f"Parquet (.parquet) with word-list and tag-list columns, or a CoNLL-style file "
                         f"({', '.join(CONLL_EXTENSIONS)}: one token and its tag a line, blank lines between "
                         "sentences)")


def _lines(path: str, what: str):
    """``(number, text)`` of every line of a UTF-8 text file (a bad byte is named by line)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{what}: {path} is not UTF-8 text: byte 0x{raw[exc.start:exc.start + 1].hex()} on "
                                 f"line {number} cannot be decoded; save the file as UTF-8") from None


def _as_list(value):
    """A cell as a list: lists stay, a string is a JSON list (``["a", "b"]``) or space-separated items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                return value  # not a list: named by check_sentences
            return parsed
        return text.split()
    if hasattr(value, "tolist"):  # a numpy array (Parquet)
        return value.tolist()
    return value


def _read_conll(path: str, what: str, labelled: bool) -> Rows:
    sentences, words, tags, lines = [], [], [], []

    def close():
        if words:
            sentences.append(Sentence(list(words), list(tags) if labelled else None, lines[0], list(lines)))
        words.clear(), tags.clear(), lines.clear()

    for number, text in _lines(path, what):
        fields = text.split()
        if not fields:
            close()
            continue
        if fields[0] == DOCSTART:
            close()
            continue
        if labelled and len(fields) < 2:
            raise ValueError(f"data: {path}, line {number}: {text.strip()[:60]!r} has no tag; a CoNLL-style file has "
                             "one token and its tag a line (the tag in the last field), a blank line between "
                             "sentences")
        words.append(fields[0])
        tags.append(fields[-1])
        lines.append(number)
    close()
    return Rows(path, "line", sentences, "tokens", "tags", conll=True)


def _json_rows(path: str, what: str):
    """``(unit, [(number, row)])`` of a .jsonl file (or a .json file holding an array of rows / {"data": [...]})."""
    check_text_file(path, what)  # UTF-8, and a malformed JSON line named by line number
    if _stem(path).endswith(".json"):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
        try:
            document = json.loads(text)
        except ValueError:
            document = None  # JSON Lines in a .json file
        if isinstance(document, dict) and isinstance(document.get("data"), list):
            document = document["data"]
        if isinstance(document, list):
            return "row", list(enumerate(document, start=1))
    rows = []
    for number, text in _lines(path, what):
        if text.strip():
            rows.append((number, json.loads(text)))
    return "line", rows


def _csv_rows(path: str, what: str):
    check_text_file(path, what)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [(reader.line_num, row) for row in reader]
        columns = list(reader.fieldnames or [])
    return rows, columns


def _parquet_rows(path: str, what: str):
    from ..sources import read_data_file

    dataset = read_data_file(path, what)
    return list(enumerate(dataset.to_list(), start=1)), list(dataset.column_names)


def _read_table(path: str, what: str, tokens_column: str, tags_column: str | None) -> Rows:
    stem = _stem(path).lower()
    if stem.endswith((".jsonl", ".json")):
        unit, rows = _json_rows(path, what)
        columns = list(dict.fromkeys(k for _, row in rows if isinstance(row, dict) for k in row))
    elif stem.endswith(".csv"):
        unit, (rows, columns) = "line", _csv_rows(path, what)
    else:
        unit, (rows, columns) = "row", _parquet_rows(path, what)
    if not rows:
        raise ValueError(f"{what}: {path} has no rows")
    for column in (tokens_column, tags_column):
        if column is not None and column not in columns:
            option = "data.tokens_column" if column == tokens_column else "data.tags_column"
            raise ValueError(f"data: column {column!r} not found in {path}; the columns are {', '.join(columns)} "
                             f"(set {option})")
    sentences = []
    for number, row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"data: {path}, {unit} {number}: a JSON {type(row).__name__}, not an object with the "
                             f"columns {tokens_column!r} and {tags_column!r}")
        tags = _as_list(row.get(tags_column)) if tags_column is not None else None
        sentences.append(Sentence(_as_list(row.get(tokens_column)), tags, number))
    return Rows(path, unit, sentences, tokens_column, tags_column or "tags")


def read_sentences(path: str, what: str, tokens_column: str = "tokens", tags_column: str | None = "tags") -> Rows:
    """The sentences of one local file (``tags_column`` None: unlabelled, tags are not read)."""
    _check_format(path, what)
    if not os.path.isfile(path):
        raise ValueError(f"{what}: the file {path!r} does not exist")
    if is_conll(path):
        return _read_conll(path, what, labelled=tags_column is not None)
    return _read_table(path, what, tokens_column, tags_column)


def _hub_rows(dataset, where: str, tokens_column: str, tags_column: str | None) -> Rows:
    """The sentences of a ``datasets.Dataset`` (a Hub split); ClassLabel tag ids become their names."""
    for column in (tokens_column, tags_column):
        if column is not None and column not in dataset.column_names:
            raise ValueError(f"data: column {column!r} not found in {where}; the columns are "
                             f"{', '.join(dataset.column_names)} (set data.tokens_column / data.tags_column)")
    names = None
    if tags_column is not None:
        feature = getattr(dataset.features[tags_column], "feature", None)
        names = getattr(feature, "names", None)
    sentences = []
    for i, row in enumerate(dataset):
        tags = _as_list(row[tags_column]) if tags_column is not None else None
        if names is not None and isinstance(tags, list):
            tags = [names[t] if isinstance(t, int) and 0 <= t < len(names) else t for t in tags]
        sentences.append(Sentence(_as_list(row[tokens_column]), tags, i + 1))
    return Rows(where, "row", sentences, tokens_column, tags_column or "tags")


# ---------------------------------------------------------------------------------------------- checks
def check_sentences(rows: Rows, labelled: bool = True) -> None:
    """Raise ``ValueError`` naming the file, line and column for a missing or empty word list, a word that is not a
    non-empty string, a missing tag list, or a tag list whose length differs from the word list."""
    if not rows.sentences:
        raise ValueError(f"data: {rows.where} has no sentences")
    for sentence in rows.sentences:
        words = sentence.words
        if words is None:
            raise ValueError(f"{rows.at(sentence, 'tokens')}: the word list is missing (null); every row needs one")
        if not isinstance(words, list):
            raise ValueError(f"{rows.at(sentence, 'tokens')}: {words!r} is not a list of words (a JSON list, or "
                             "space-separated words in a CSV cell)")
        if not words:
            raise ValueError(f"{rows.at(sentence, 'tokens')}: an empty row (no words); remove it")
        for k, word in enumerate(words):
            if not isinstance(word, str) or not word.strip():
                raise ValueError(f"{rows.at(sentence, 'tokens', k)}: word {k + 1} is {word!r}, not a non-empty "
                                 "string; every word needs its text")
        if not labelled:
            continue
        tags = sentence.tags
        if tags is None:
            raise ValueError(f"{rows.at(sentence, 'tags')}: the tag list is missing (null); every row of a labelled "
                             "split needs one (unlabelled sentences belong in data.transfer)")
        if not isinstance(tags, list):
            raise ValueError(f"{rows.at(sentence, 'tags')}: {tags!r} is not a list of tags")
        if len(tags) != len(words):
            raise ValueError(f"{rows.at(sentence, 'tags')}: {len(tags)} tag(s) for {len(words)} word(s) (column "
                             f"{rows.tokens_column!r}); every word needs exactly one tag")
        for k, tag in enumerate(tags):
            if isinstance(tag, bool) or not isinstance(tag, (str, int)) or not str(tag).strip():
                raise ValueError(f"{rows.at(sentence, 'tags', k)}: tag {k + 1} is {tag!r}, not a tag name")


def bio_warnings(rows: Rows) -> str | None:
    """The warning for ``I-`` tags that follow neither a ``B-`` nor an ``I-`` of their type, or None."""
    found = []
    for sentence in rows.sentences:
        previous = "O"
        for k, tag in enumerate(str(t) for t in sentence.tags):
            if tag.startswith("I-") and previous not in (f"B-{tag[2:]}", f"I-{tag[2:]}"):
                found.append((sentence, k, tag, previous))
            previous = tag
    if not found:
        return None
    sentence, k, tag, previous = found[0]
    return (f"{rows.at(sentence, 'tags', k)}: {len(found)} I- tag(s) with no B- or I- of the same type before them "
            f"(first: word {k + 1}, {tag!r} after {previous!r}); seqeval starts an entity at such a tag, check that "
            "the file is BIO-tagged")


def _unseen(split_rows: dict, known: set, fixed: bool) -> dict:
    """Tag -> (count, rows, sentence, word) of the tags of the splits that are not in ``known``."""
    unseen = {}
    for split, rows in split_rows.items():
        if split == "train" and not fixed:
            continue
        for sentence in rows.sentences:
            for k, tag in enumerate(str(t) for t in sentence.tags):
                if tag not in known:
                    count, first = unseen.get(tag, (0, (rows, sentence, k, split)))
                    unseen[tag] = (count + 1, first)
    return unseen


def _check_unseen(unseen: dict, fixed: bool) -> None:
    tag, (count, (rows, sentence, k, split)) = next(iter(unseen.items()))
    shown = ", ".join(repr(t) for t in list(unseen)[:SHOWN]) + (", ..." if len(unseen) > SHOWN else "")
    where = "data.label_names" if fixed else "the training split"
    raise ValueError(
        f"{rows.at(sentence, 'tags', k)}: the tag {tag!r} (word {k + 1}, {sentence.words[k]!r}) is not in {where}; "
        f"{len(unseen)} tag(s) of the {split if fixed else 'validation/test'} data are not ({shown}). A model cannot "
        "predict a tag it never learned: fix the data, or set data.unseen_tags: keep to add them to the label set "
        "(the models never learn them, so they count as misses in the evaluation)")


# ---------------------------------------------------------------------------------------------- loading
def _find_split_file(directory: str, name: str, default_name: str) -> str | None:
    names = VALIDATION_NAMES if name == default_name == "validation" else (name,)
    for candidate in names:
        for ext in (*TABLE_EXTENSIONS, *CONLL_EXTENSIONS):
            for suffix in (ext, ext + ".gz"):
                path = os.path.join(directory, candidate + suffix)
                if os.path.isfile(path):
                    return path
    return None


def _local_files(section) -> dict:
    files = {"train": section.train_file, "validation": section.validation_file, "test": section.test_file}
    source = section.source
    if source and os.path.isdir(source):
        for split, name, default in (("train", section.train_split, "train"),
                                     ("validation", section.validation_split, "validation"),
                                     ("test", section.test_split, "test")):
            if files[split] is None:
                files[split] = _find_split_file(source, name, default)
        if files["train"] is None:
            raise ValueError(f"data.source {source!r} is a directory without a {section.train_split} file "
                             f"({', '.join((*TABLE_EXTENSIONS, *CONLL_EXTENSIONS))}); name its files train / "
                             "validation / test or set data.train_file")
    elif source and os.path.isfile(source) and files["train"] is None:
        files["train"] = source
    elif source and not any(files.values()) and not os.path.exists(source):
        raise ValueError(f"data.source {source!r} does not exist (a local file or directory was expected)")
    return {split: path for split, path in files.items() if path is not None}


def _read_splits(section) -> tuple:
    """``({split: Rows}, files)`` of the labelled splits of ``section`` (local files or a Hub dataset)."""
    from ..text.data import is_local_source, load_raw_splits

    if is_local_source(section):
        files = _local_files(section)
        rows = {split: read_sentences(path, f"data: the {split} file", section.tokens_column, section.tags_column)
                for split, path in files.items()}
        return rows, files
    raw, files = load_raw_splits(section)  # a Hub dataset (an offline machine gets the text task's message)
    rows = {split: _hub_rows(dataset, f"the {split} split of {section.source}", section.tokens_column,
                             section.tags_column) for split, dataset in raw.items()}
    return rows, files


def _dataset(rows: Rows, index: dict):
    import datasets

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "tags": datasets.Sequence(datasets.Value("int64"))})
    return datasets.Dataset.from_dict({
        "tokens": [list(s.words) for s in rows.sentences],
        "tags": [[index[str(t)] for t in s.tags] for s in rows.sentences],
    }, features=features)


def load_token_data(section, need_test: bool = True):
    """Read and check the labelled splits; returns ``(DatasetDict, label_names, info)``. Every split has ``tokens``
    (the words) and ``tags`` (tag ids into ``label_names``, the sorted tag set of the training split)."""
    split_rows, files = _read_splits(section)
    fixed = list(section.label_names) if getattr(section, "label_names", None) else None
    if "train" not in split_rows:
        raise ValueError(f"data {section.source or section.train_file!r} has no training split "
                         f"(found {', '.join(split_rows) or 'none'})")
    for rows in split_rows.values():
        check_sentences(rows)
    known = set(fixed) if fixed else {str(t) for s in split_rows["train"].sentences for t in s.tags}
    unseen = _unseen(split_rows, known, fixed is not None)
    if unseen and (fixed is not None or section.unseen_tags != "keep"):
        _check_unseen(unseen, fixed is not None)
    label_names = fixed or sorted(known | set(unseen))
    if len(label_names) < 2:
        raise ValueError(f"data: {split_rows['train'].where}, column {split_rows['train'].tags_column!r}: the "
                         f"training split has {len(label_names)} tag(s) ({', '.join(label_names)}); token "
                         "classification needs at least 2")
    for rows in split_rows.values():
        message = bio_warnings(rows)
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
    if unseen:
        warnings.warn(f"data.unseen_tags: keep: {len(unseen)} validation/test tag(s) that the training split never "
                      f"has are in the label set ({', '.join(repr(t) for t in list(unseen)[:SHOWN])}"
                      f"{', ...' if len(unseen) > SHOWN else ''}); the models never learn them, so each occurrence "
                      "counts as a miss", UserWarning, stacklevel=2)
    index = {name: i for i, name in enumerate(label_names)}
    splits = carve_validation({split: _dataset(rows, index) for split, rows in split_rows.items()}, section)
    splits, info = finish_splits(splits, section, files, label_names, need_test,
                                 {"tokens_column": section.tokens_column, "tags_column": section.tags_column,
                                  "label_all_tokens": section.label_all_tokens},
                                 carved="validation" not in split_rows)
    if unseen:
        info["unseen_tags"] = {tag: count for tag, (count, _) in unseen.items()}
    return splits, label_names, info


def read_unlabelled(source: str, split: str, column: str, what: str = "data.transfer.source") -> list:
    """The word lists of an unlabelled source (a file, a directory with ``<split>`` files, a Hub id): a column of
    word lists, or of sentences split on whitespace (as the labelled words are split), or a CoNLL-style file."""
    from ..sources import looks_local, read_rows

    expanded = os.path.expanduser(source)
    if os.path.isdir(expanded):
        path = _find_split_file(expanded, split, split)
        if path is None:
            raise ValueError(f"{what} {source!r}: the directory has no {split} file")
        rows = read_sentences(path, what, column, None)
    elif looks_local(source):
        rows = read_sentences(expanded, what, column, None)
    else:
        rows = _hub_rows(read_rows(source, split, what), f"the {split} split of {source}", column, None)
    check_sentences(rows, labelled=False)
    return [list(s.words) for s in rows.sentences]
