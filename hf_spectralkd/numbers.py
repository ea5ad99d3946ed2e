"""Checks of the numbers a run is configured with: every float finite, learning rates and sizes in range.

A NaN or infinite setting (``temperature=.inf``, ``learning_rate=nan``) trains a NaN model that logs a loss of 0
and exits 0; these checks make it an error naming the field before any work.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["check_finite_fields", "check_seed", "check_training_arguments"]

# TrainingArguments fields that must be > 0 / >= 0 for a run to train at all
POSITIVE_INTS = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
NON_NEGATIVE = ("learning_rate", "weight_decay", "num_train_epochs", "warmup_ratio", "max_grad_norm",
                "label_smoothing_factor")
# seeds go to numpy.random.seed (transformers.set_seed), which takes 0..2**32-1 only
SEED_FIELDS = ("seed", "data_seed")
MAX_SEED = 2**32 - 1


def check_finite_fields(args, what: str = "") -> None:
    """Raise ``ValueError`` naming the first float field of the dataclass ``args`` that is NaN or infinite."""
    prefix = f"{what}." if what else ""
    for f in dataclasses.fields(args):
        value = getattr(args, f.name, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{prefix}{f.name} must be a finite number, got {value!r}")


def check_training_arguments(args, what: str = "") -> None:
    """Every float finite, batch sizes >= 1 and learning rate / epochs / decay >= 0 (``what`` names the section)."""
    check_finite_fields(args, what)
    prefix = f"{what}." if what else ""
    for name in POSITIVE_INTS:
        value = getattr(args, name, None)
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{prefix}{name} must be >= 1, got {value}")
    for name in NON_NEGATIVE:
        value = getattr(args, name, None)
        if isinstance(value, (int, float)) and value < 0:
            raise ValueError(f"{prefix}{name} must be >= 0, got {value}")
    for name in SEED_FIELDS:
        check_seed(getattr(args, name, None), f"{prefix}{name}")


def check_seed(value, what: str) -> None:
    """A seed is a whole number in ``0..2**32-1`` (numpy's range; None passes), else a ``ValueError`` naming
    ``what``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED):
        raise ValueError(f"{what} must be a whole number in 0..{MAX_SEED} (the seeds numpy accepts), got {value!r}")
