"""Small helpers shared across the library: atomic JSON files, content hashes, JSON-safe numbers,
layer-index range checks. No torch, no transformers."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable

__all__ = ["write_json", "read_json", "hash_object", "file_digest", "json_number", "check_layer_range"]


def write_json(path: str, payload, indent: int = 2) -> str:
    """Write ``payload`` to ``path`` atomically (a reader never sees a half-written file)."""
    return write_text(path, json.dumps(payload, indent=indent, default=str))


def write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, then a rename (a kill or a full disk
    leaves the previous file whole, never a truncated one). A failed write (a full disk, a read-only folder) is an
    ``OSError`` naming ``path`` and saying that the previous file was left as it was; no temporary file stays."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, path) from exc
        raise
    return path


def copy_file(source: str, target: str) -> str:
    """Copy ``source`` to ``target`` atomically, as :func:`write_text` writes (a failed copy names ``target`` and
    leaves the previous file whole)."""
    import shutil

    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and getattr(exc, "filename", None) != source:  # (a missing source names itself)
            raise write_error(exc, target) from exc
        raise
    return target


class FileWriteError(OSError):
    """A file that could not be written, named in one line (the error of a ``write`` itself names no file:
    ``[Errno 28] No space left on device``; the CLI prints errors that name a file as one line, no traceback)."""

    def __str__(self) -> str:
        return self.strerror


def write_error(exc: OSError, path: str) -> FileWriteError:
    """``exc``, raised while ``path`` was written through a temporary file, as a :class:`FileWriteError` naming
    ``path`` and what became of the file (the previous one is untouched: only the temporary file was written)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    before = "the previous file was left as it was" if os.path.lexists(path) else "nothing was written"
    error = FileWriteError(exc.errno, f"could not write {path}: {reason}; {before}")
    error.filename = path
    return error


def read_json(path: str, default=None):
    """The JSON content of ``path``, or ``default`` when the file is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def hash_object(obj) -> str:
    """A short, stable hash of a JSON-able object (keys sorted; other objects by ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str) -> str:
    """A short SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def json_number(value) -> float | None:
    """A float for JSON: NaN and infinities are not JSON, so they become ``None`` (null)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_layer_range(what: str, indices: Iterable[int], low: int, high: int, meaning: str = "") -> None:
    """Raise ``ValueError`` naming ``what`` when an index of ``indices`` lies outside ``low..high``.

    One wording for every layer-index check: ``"<what> [9] out of range: valid indices are 0..6 (<meaning>)"``.
    """
    bad = [i for i in indices if not low <= i <= high]
    if bad:
        extra = f" ({meaning})" if meaning else ""
        raise ValueError(f"{what} {bad} out of range: valid indices are {low}..{high}{extra}")
