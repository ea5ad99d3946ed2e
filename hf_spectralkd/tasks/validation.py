"""Data checks made before any work, each naming the file, the line or row, and the column.

- :func:`check_text_file`: a local .jsonl/.json/.csv file is UTF-8 (else: the byte offset of the first bad byte)
  and, for JSON Lines, every line is one JSON object (else: the line number and what is wrong).
- :func:`check_labelled_rows`: the labelled splits (train/validation/test; a transfer set has no labels) have a
  label on every row, labels of one type (not ints mixed with strings), a text on every row (not null), and the
  training split has at least two classes (one class would fine-tune a 1-label regression head and report 100 %).
"""

from __future__ import annotations

import gzip
import json
import os

__all__ = ["check_text_file", "check_labelled_rows"]

TEXT_EXTENSIONS = (".jsonl", ".json", ".csv")
MAX_SHOWN = 60  # characters of a bad line quoted in an error


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _json_lines(path: str) -> bool:
    """Whether ``path`` is read line by line as JSON Lines (a .json file holding one array/object is not)."""
    stem = path[:-3] if path.endswith(".gz") else path
    if stem.endswith(".jsonl"):
        return True
    if not stem.endswith(".json"):
        return False
    with _open_binary(path) as handle:
        data = handle.read()
    try:
        json.loads(data)
        return False  # one JSON document (an array of rows, or {"data": [...]})
    except ValueError:
        return True


def check_text_file(path: str, what: str = "data", label_column=None, text_columns=()) -> None:
    """Raise ``ValueError`` for a text data file that is not UTF-8 or a JSON Lines file with a malformed line; with
    ``label_column`` / ``text_columns``, a JSON Lines file's rows are checked as :func:`check_labelled_rows` does,
    by line number (before ``datasets`` fails on mixed types with a message that names no line)."""
    stem = path[:-3] if path.endswith(".gz") else path
    if not stem.endswith(TEXT_EXTENSIONS) or not os.path.isfile(path):
        return
    lines = _json_lines(path)
    offset, numbers, rows = 0, [], []
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start:exc.start + 1].hex()
                raise ValueError(
                    f"{what}: {path} is not UTF-8 text: byte 0x{bad} at byte offset {offset + exc.start} (line "
                    f"{number}) cannot be decoded; save the file as UTF-8"
                ) from None
            offset += len(raw)
            if lines and text.strip():
                rows.append(_check_json_line(path, what, number, text))
                numbers.append(number)
    present = set().union(*(row.keys() for row in rows)) if rows else set()
    if lines and label_column in present:  # a column no row has is named by the column check, with the columns
        columns = {c: [row.get(c) for row in rows] for c in (label_column, *text_columns) if c in present}
        check_labelled_rows(columns, path, label_column, [c for c in text_columns if c in present],
                            positions=numbers, unit="line")


def _check_json_line(path: str, what: str, number: int, text: str) -> dict:
    try:
        row = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"{what}: {path}, line {number}: malformed JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}): "
            f"{text.strip()[:MAX_SHOWN]!r}; every line of a .jsonl file is one JSON object"
        ) from None
    if not isinstance(row, dict):
        raise ValueError(f"{what}: {path}, line {number}: a JSON {type(row).__name__}, not an object "
                         f"({text.strip()[:MAX_SHOWN]!r}); every line of a .jsonl file is one JSON object")
    return row


def _shown(value) -> str:
    """``value`` as JSON, cut to :data:`MAX_SHOWN` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def _blank(value) -> bool:
    return value is None  # an empty string is a (poor) text, a null is a missing one


def _kind(value) -> str:
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def check_labelled_rows(rows, where: str, label_column: str, text_columns, require_classes: int = 0,
                        positions=None, unit: str = "row") -> None:
    """Raise ``ValueError`` naming ``where`` (the file or split), the row (1-based, or ``positions[i]`` in ``unit``s,
    e.g. lines) and the column for a missing or null label, labels of mixed types (int and str), a null text, or
    fewer than ``require_classes`` distinct labels. ``rows``: column name -> values (a Dataset works)."""
    labels = rows[label_column]
    at = (lambda i: positions[i]) if positions is not None else (lambda i: i + 1)  # noqa: E731
    first = None
    for i, value in enumerate(labels):
        if value is None:
            raise ValueError(f"data: {where}, {unit} {at(i)}, column {label_column!r}: the label is missing (null); "
                             "every row of a labelled split needs one (unlabelled rows belong in data.transfer)")
        if first is None:
            first = (_kind(value), at(i), value)
        elif _kind(value) != first[0]:
            raise ValueError(
                f"data: {where}, {unit} {at(i)}, column {label_column!r}: the label {value!r} is a {_kind(value)} but "
                f"{unit} {first[1]} has the {first[0]} {first[2]!r}; use one type for every label (a 1 and a '1' "
                "would be two different classes)")
    for column in text_columns:
        if not column:
            continue
        for i, value in enumerate(rows[column]):
            if _blank(value):
                raise ValueError(f"data: {where}, {unit} {at(i)}, column {column!r}: the text is missing (null); "
                                 "every row needs its text")
            if isinstance(value, (list, tuple, dict)):  # a tokenizer would read a list of two strings as a pair
                raise ValueError(
                    f"data: {where}, {unit} {at(i)}, column {column!r}: the text is a {type(value).__name__} "
                    f"({_shown(value)}), not one string; join it into one text, or put the second text of a pair in "
                    "its own column and name it in data.text_pair_column")
            if not isinstance(value, str):  # a number: the tokenizer would fail with a TypeError after stages ran
                raise ValueError(
                    f"data: {where}, {unit} {at(i)}, column {column!r}: the text is a {_kind(value)} ({value!r}), not "
                    f"a string; write every text as a string (\"{value}\"), or name the text column in "
                    "data.text_column (--text-column)")
    if require_classes:
        classes = {str(v) for v in labels}
        if len(classes) < require_classes:
            raise ValueError(
                f"data: {where}, column {label_column!r}: the training split has {len(classes)} class(es) "
                f"({', '.join(sorted(classes))}); classification needs at least {require_classes} (with one class "
                "the teacher would become a 1-output regression model and report 100 %)")
