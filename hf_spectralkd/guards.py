"""Checks made while training: a non-finite loss stops the run at its first step (naming the step and the loss
term), an attention mask that does not match the hidden states is an error instead of a silent broadcast, a label
id outside the head's classes is named (row, value, valid range) before any work, and a model or checkpoint that
cannot be written (a full disk) is an error naming its folder."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil

__all__ = ["NonFiniteLossError", "check_attention_mask", "check_finite_loss", "check_finite_parameters",
           "check_label_ids", "is_disk_full", "writing_to"]


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite: the run stops before a NaN model is saved."""


def check_finite_loss(loss, step: int, components: dict) -> None:
    """Raise :class:`NonFiniteLossError` when ``loss`` is not finite, naming the step and the non-finite terms.

    ``components`` maps a loss term's name to its last value (a tensor or a number)."""
    if math.isfinite(float(loss)):
        return
    bad = []
    for name, value in sorted(components.items()):
        number = float(value)
        if not math.isfinite(number):
            bad.append(f"{name}={number}")
    terms = ", ".join(bad) if bad else "the total loss (every logged term was finite)"
    raise NonFiniteLossError(
        f"the training loss is {float(loss)} at step {step + 1} (non-finite term: {terms}); training stopped and no "
        "model was saved. Check the learning rate, the distillation settings (temperature, alpha, beta), fp16 "
        "overflow and the teacher's outputs (a damaged teacher cache?)"
    )


def check_attention_mask(mask, hidden, what: str = "model") -> None:
    """A token model's ``attention_mask`` must be ``(batch, tokens)`` of its hidden states ``(batch, tokens, width)``:
    anything else would be broadcast by the alignment loss instead of masking the padding."""
    if mask is None or hidden is None or getattr(hidden, "dim", lambda: 0)() != 3:
        return
    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"{what}: attention_mask has shape {tuple(mask.shape)} but the hidden states are {tuple(hidden.shape)}; "
            f"the mask must be (batch, tokens) = {tuple(hidden.shape[:2])} (one 0/1 per token)"
        )


def check_finite_parameters(model, what: str) -> None:
    """Raise :class:`NonFiniteLossError` when a trained ``model`` has a NaN or infinite weight: it is not saved (the
    plain Trainer of the teacher fine-tuning and the baseline hides a NaN loss from its logs)."""
    import torch

    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter.detach()).all():
            raise NonFiniteLossError(
                f"the trained {what} has non-finite weights (e.g. {name}): training diverged, so it was not saved. "
                "Lower the learning rate, or check fp16 overflow and the data"
            )


def check_label_ids(dataset, num_labels: int | None, what: str = "train_dataset", ignore_index: int = -100) -> None:
    """Raise ``ValueError`` naming the row, the value and the valid range when an integer label of ``dataset`` (a
    ``datasets.Dataset`` with a ``labels`` / ``label`` column of ids, or of lists of ids for a token head) is not a
    class of a ``num_labels``-class head (``0..num_labels-1``) nor ``ignore_index``: the cross-entropy would fail
    mid-training with a bare ``IndexError``. Other datasets, float labels (regression, soft or multi-label
    targets) and a head of fewer than 2 classes pass unchecked."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        return
    if not isinstance(dataset, datasets.Dataset) or not isinstance(num_labels, int) or num_labels < 2:
        return
    column = next((c for c in ("labels", "label") if c in dataset.column_names), None)
    if column is None or len(dataset) == 0:
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    values = dataset.with_format("arrow")[column].combine_chunks()
    rows = None
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):  # a token head: one id per position
        rows, values = pc.list_parent_indices(values), pc.list_flatten(values)
    if not pa.types.is_integer(values.type) or len(values) == 0:
        return
    bad = pc.fill_null(pc.and_(pc.not_equal(values, ignore_index),
                               pc.or_(pc.less(values, 0), pc.greater_equal(values, num_labels))), False)
    count = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
    if not count:
        return
    first = pc.index(bad, True).as_py()
    row = rows[first].as_py() if rows is not None else first
    raise ValueError(
        f"{what}: row {row} (0-based), column {column!r}, has the label id {values[first].as_py()}, but the model's "
        f"head has {num_labels} classes: valid label ids are 0..{num_labels - 1} (or {ignore_index} for a "
        f"{'position' if rows is not None else 'row'} that is not scored); {count} label(s) are out of range. Encode "
        "the labels with the teacher's label2id; nothing was trained"
    )


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# how a full disk reads when the errno is lost: safetensors' Rust error; torch.save's stream writer says only that a
# write fell short (WRITE_FAILED_TEXTS)
SPACE_TEXTS = ("no space left on device", "os error 28", "storagefull", "disk quota exceeded", "os error 122")
WRITE_FAILED_TEXTS = ("file write failed", "unexpected pos")
DISK_FULL_TEXTS = SPACE_TEXTS + WRITE_FAILED_TEXTS


def _mentions(exc: BaseException, texts) -> bool:
    """Whether ``exc`` or an error it was raised from is ``ENOSPC`` / ``EDQUOT`` or says one of ``texts``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in texts):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a write that failed for lack of space: ``ENOSPC`` /
    ``EDQUOT``, or the text of safetensors' or ``torch.save``'s error for it."""
    return _mentions(exc, DISK_FULL_TEXTS)


@contextlib.contextmanager
def writing_to(folder: str, what: str, remove_new: bool = False):
    """Within the ``with`` block, a write that fails for lack of space (:func:`is_disk_full`; safetensors and
    ``torch.save`` name no file) is re-raised as an ``OSError`` naming ``what`` and ``folder``. ``remove_new``: a
    ``folder`` the block created is removed (a half-written checkpoint, of no use to a resume, frees its space)."""
    from .utils import FileWriteError

    existed = os.path.lexists(folder)
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, FileWriteError) and not is_disk_full(exc):
            raise
        removed = remove_new and not existed and os.path.isdir(folder) and not os.path.islink(folder)
        if removed:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, FileWriteError):  # a write inside the block already named its file or folder
            raise
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        cause = "the disk is full" if _mentions(exc, SPACE_TEXTS) else "a write fell short (is the disk full?)"
        error = FileWriteError(
            errno.ENOSPC,
            f"could not write {what} to {folder}: {cause} ({type(exc).__name__}: {reason[:200]}); "
            f"{'the half-written folder was removed; ' if removed else ''}free some space (or write elsewhere: "
            "output_dir / output.dir) and run again",
        )
        error.filename = folder
        raise error from exc
