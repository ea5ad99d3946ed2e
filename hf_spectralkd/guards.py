"""Checks made while training: a non-finite loss stops the run at its first step (naming the step and the loss
term), and an attention mask that does not match the hidden states is an error instead of a silent broadcast."""

from __future__ import annotations

import math

__all__ = ["NonFiniteLossError", "check_attention_mask", "check_finite_loss", "check_finite_parameters"]


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
