"""Model heads: what a model's logits are and which positions count (docs/method.md, "Heads").

A head turns one forward pass into the *units* the logit terms average over: rows for sequence classification,
multiple choice, extractive QA, regression and multi-label classification; token positions for token
classification and masked / causal language modelling. For every unit it gives the KD value, the hard-label
loss (CE) and whether the unit is labelled, so the trainer's one formula

    ``(1-α)·mean_{labelled units} CE + α·mean_{counted units} KD``

serves every head. The adapter of a model family says which head a model has (:meth:`ModelAdapter.head`); the
trainer never branches on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..constants import KD_MASK_COLUMN

__all__ = [
    "Head",
    "HeadTerms",
    "UnsupportedHeadError",
    "SequenceClassificationHead",
    "RegressionHead",
    "MultiLabelClassificationHead",
    "MultipleChoiceHead",
    "TokenClassificationHead",
    "QuestionAnsweringHead",
    "MaskedLMHead",
    "CausalLMHead",
    "SUPPORTED_HEADS",
    "DataCollatorForTokenDistillation",
]

IGNORE_INDEX = -100


class UnsupportedHeadError(ValueError):
    """The model's head is not one the trainer distils (the message names the model class and the supported ones)."""


@dataclass
class HeadTerms:
    """Per-unit values of one batch: ``kd`` and ``counted`` (units the KD mean runs over), ``ce`` and
    ``labelled`` (units the CE mean runs over), ``wrong`` (labelled units the teacher predicts wrongly, for
    ``gate_teacher_errors``; ``None`` where a head has no class prediction)."""

    kd: torch.Tensor
    counted: torch.Tensor
    ce: torch.Tensor | None
    labelled: torch.Tensor | None
    wrong: torch.Tensor | None = None


KDFunction = Callable[..., torch.Tensor]  # logit_kd_loss(student, teacher, temperature, reduction="none") -> (U,)
CEFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ce_loss(logits (U, C), labels (U,)) -> (U,)


class Head:
    """Base class. ``label_names``: the batch keys holding the hard labels; ``per_token``: the logits have a token
    axis aligned with ``attention_mask`` (the teacher cache then stores them per real token)."""

    name = "base"
    label_names: tuple = ("labels",)
    per_token = False
    #: the transformers auto class that loads a saved model of this head, and PEFT's task type for it
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type: str | None = "SEQ_CLS"
    #: the Hub pipeline tag of a model with this head (results.json's ``task``, the card's ``pipeline_tag``)
    pipeline_tag = "text-classification"
    #: the KD term is a softmax KL at temperature τ (regression's MSE has no temperature, multi-label is binary)
    softmax = True

    def logits(self, outputs) -> torch.Tensor:
        """The tensor the KD term compares (one per model output)."""
        return outputs.logits

    def check(self, logits: torch.Tensor, inputs: dict, model_name: str) -> None:
        """Raise ``ValueError`` when the logits or labels do not have this head's shape (a model whose head was
        guessed wrong, labels of another task)."""

    def terms(self, student: torch.Tensor, teacher: torch.Tensor, inputs: dict, temperature: float,
              kd_fn: KDFunction, ce_fn: CEFunction) -> HeadTerms:  # pragma: no cover - interface
        raise NotImplementedError

    def output(self, outputs):
        """The student's own output object without ``hidden_states`` / ``attentions`` (what ``compute_loss``
        returns with ``return_outputs=True``: predictions then hold the logits only)."""
        dropped = ("hidden_states", "attentions", "loss", "past_key_values", "cache")
        return type(outputs)(**{k: v for k, v in outputs.items() if k not in dropped})


def _shape_error(head: Head, model_name: str, detail: str) -> ValueError:
    return ValueError(
        f"{model_name} was taken as a {head.name} model, but {detail}. Supported heads: {', '.join(SUPPORTED_HEADS)}"
    )


# ---------------------------------------------------------------- sequence-level heads
class SequenceClassificationHead(Head):
    """``(B, C)`` logits, one integer label per row (-100: an unlabelled transfer row). KD: ``τ²·mean_rows KL``."""

    name = "sequence-classification"

    def output(self, outputs):
        """The logits alone, as before heads existed (a decoder classifier's output would also carry its cache)."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        return SequenceClassifierOutput(logits=self.logits(outputs))

    def check(self, logits, inputs, model_name):
        if logits.dim() != 2:
            raise _shape_error(self, model_name, f"its logits have shape {tuple(logits.shape)}, not (batch, classes)")
        labels = inputs.get(self.label_names[0])
        if labels is not None and (labels.dim() != 1 or labels.dtype.is_floating_point):
            raise _shape_error(
                self, model_name, f"the labels have shape {tuple(labels.shape)} and dtype {labels.dtype}, not one "
                "integer class id per row"
            )

    def terms(self, student, teacher, inputs, temperature, kd_fn, ce_fn):
        kd = kd_fn(student, teacher, temperature, reduction="none")
        counted = torch.ones_like(kd, dtype=torch.bool)
        labels = inputs.get(self.label_names[0])
        if labels is None:
            return HeadTerms(kd, counted, None, None)
        labelled = labels != IGNORE_INDEX
        wrong = labelled & (teacher.argmax(-1) != labels)
        return HeadTerms(kd, counted, ce_fn(student, labels), labelled, wrong)


class MultipleChoiceHead(SequenceClassificationHead):
    """``(B, num_choices)`` logits from ``(B, num_choices, L)`` inputs; the same terms as sequence classification."""

    name = "multiple-choice"
    output = Head.output
    auto_class = "AutoModelForMultipleChoice"
    pipeline_tag = "multiple-choice"
    peft_task_type = None  # PEFT has no multiple-choice task type: the head is trained through modules_to_save


class RegressionHead(Head):
    """``num_labels == 1``: KD is the MSE between student and teacher outputs (no temperature), CE the MSE to the
    float label (the model's own ``MSELoss``). A NaN label (or -100) marks an unlabelled row."""

    name = "regression"
    softmax = False

    def check(self, logits, inputs, model_name):
        if logits.dim() != 2:
            raise _shape_error(self, model_name, f"its outputs have shape {tuple(logits.shape)}, not (batch, 1)")

    def terms(self, student, teacher, inputs, temperature, kd_fn, ce_fn):
        student, teacher = student.float(), teacher.float()
        kd = ((student - teacher) ** 2).mean(-1)
        counted = torch.ones_like(kd, dtype=torch.bool)
        labels = inputs.get(self.label_names[0])
        if labels is None:
            return HeadTerms(kd, counted, None, None)
        target = labels.float().reshape(student.shape)
        labelled = torch.isfinite(target).all(-1) & (target != IGNORE_INDEX).all(-1)
        safe = torch.where(torch.isfinite(target), target, torch.zeros_like(target))
        ce = ((student - safe) ** 2).mean(-1)
        return HeadTerms(kd, counted, ce, labelled)


class MultiLabelClassificationHead(Head):
    """``problem_type="multi_label_classification"``: ``(B, C)`` logits, a 0/1 float target per label. KD:
    ``τ²·mean`` over rows and labels of the binary KL between ``sigmoid(t/τ)`` and ``sigmoid(s/τ)``; CE: the
    model's ``BCEWithLogitsLoss`` (mean over labels). A row holding -100 is unlabelled."""

    name = "multi-label-classification"
    softmax = False

    def check(self, logits, inputs, model_name):
        if logits.dim() != 2:
            raise _shape_error(self, model_name, f"its logits have shape {tuple(logits.shape)}, not (batch, labels)")
        labels = inputs.get(self.label_names[0])
        if labels is not None and tuple(labels.shape) != tuple(logits.shape):
            raise _shape_error(
                self, model_name, f"the labels have shape {tuple(labels.shape)}, not one 0/1 target per label "
                f"{tuple(logits.shape)}"
            )

    @staticmethod
    def binary_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """``τ²·mean_labels [p·(log p − log q) + (1−p)·(log(1−p) − log(1−q))]`` per row,
        ``p = σ(t/τ)``, ``q = σ(s/τ)``."""
        s, t = student.float() / temperature, teacher.float() / temperature
        log_p, log_not_p = F.logsigmoid(t), F.logsigmoid(-t)
        log_q, log_not_q = F.logsigmoid(s), F.logsigmoid(-s)
        kl = log_p.exp() * (log_p - log_q) + log_not_p.exp() * (log_not_p - log_not_q)
        return kl.mean(-1) * temperature**2

    def terms(self, student, teacher, inputs, temperature, kd_fn, ce_fn):
        kd = self.binary_kl(student, teacher, temperature)
        counted = torch.ones_like(kd, dtype=torch.bool)
        labels = inputs.get(self.label_names[0])
        if labels is None:
            return HeadTerms(kd, counted, None, None)
        target = labels.float()
        labelled = (target != IGNORE_INDEX).all(-1)
        safe = torch.where(target == IGNORE_INDEX, torch.zeros_like(target), target)
        ce = F.binary_cross_entropy_with_logits(student.float(), safe, reduction="none").mean(-1)
        return HeadTerms(kd, counted, ce, labelled)


# ---------------------------------------------------------------- token-level heads
class TokenClassificationHead(Head):
    """``(B, L, C)`` logits. KD: ``τ²·mean KL`` over the counted positions: those whose label is not -100 (the
    transformers convention: -100 on special tokens, padding and non-first sub-words) and, for rows without labels
    (transfer rows), those where the batch's ``kd_mask`` column is 1 (never every token)."""

    name = "token-classification"
    per_token = True
    auto_class = "AutoModelForTokenClassification"
    pipeline_tag = "token-classification"
    peft_task_type = "TOKEN_CLS"

    def check(self, logits, inputs, model_name):
        labels = inputs.get(self.label_names[0])
        if logits.dim() != 3:
            raise _shape_error(self, model_name, f"its logits have shape {tuple(logits.shape)}, not (batch, tokens, "
                               "classes)")
        if labels is not None and tuple(labels.shape) != tuple(logits.shape[:2]):
            raise _shape_error(
                self, model_name, f"the labels have shape {tuple(labels.shape)}, not one label per token "
                f"{tuple(logits.shape[:2])} (pad them with -100: DataCollatorForTokenClassification)"
            )
        mask = inputs.get(KD_MASK_COLUMN)
        if mask is not None and tuple(mask.shape) != tuple(logits.shape[:2]):
            raise ValueError(
                f"the batch's {KD_MASK_COLUMN!r} column has shape {tuple(mask.shape)}, not one 0/1 per token "
                f"{tuple(logits.shape[:2])}: pad it with DataCollatorForTokenDistillation"
            )

    def positions(self, student, teacher, inputs) -> tuple:
        """``(student (B, L', C), teacher (B, L', C), labels (B, L') or None, kd_mask (B, L') or None)``."""
        return student, teacher, inputs.get(self.label_names[0]), inputs.get(KD_MASK_COLUMN)

    def terms(self, student, teacher, inputs, temperature, kd_fn, ce_fn):
        student, teacher, labels, kd_mask = self.positions(student, teacher, inputs)
        labelled = labels != IGNORE_INDEX if labels is not None else torch.zeros(student.shape[:2], dtype=torch.bool,
                                                                                 device=student.device)
        counted = labelled if kd_mask is None else (labelled | (kd_mask > 0))
        keep = counted | labelled
        if not bool(keep.any()) and labels is None and kd_mask is None:
            raise ValueError(
                f"a {self.name} batch without {self.label_names[0]!r} and without a {KD_MASK_COLUMN!r} column: "
                "nothing says which positions count (give the labels, -100 where none, or a 0/1 kd_mask column)"
            )
        s, t = student[keep], teacher[keep]  # (U, C): only positions that count for one of the terms
        kd = kd_fn(s, t, temperature, reduction="none")
        unit_labels = labels[keep] if labels is not None else None
        unit_labelled = labelled[keep]
        if unit_labels is None:
            return HeadTerms(kd, counted[keep], None, None)
        ce = ce_fn(s, unit_labels)
        wrong = unit_labelled & (t.argmax(-1) != unit_labels)
        return HeadTerms(kd, counted[keep], ce, unit_labelled, wrong)


class MaskedLMHead(TokenClassificationHead):
    """``(B, L, V)`` logits; the counted positions are the masked ones (label not -100)."""

    name = "masked-lm"
    auto_class = "AutoModelForMaskedLM"
    pipeline_tag = "fill-mask"
    peft_task_type = None


class CausalLMHead(TokenClassificationHead):
    """``(B, L, V)`` logits, shifted as the model's own loss shifts: logits at position ``t`` against positions
    ``t+1`` whose label is not -100. Teacher and student must share the vocabulary."""

    name = "causal-lm"
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"
    peft_task_type = "CAUSAL_LM"

    def check(self, logits, inputs, model_name):
        if logits.dim() != 3:
            raise _shape_error(self, model_name, f"its logits have shape {tuple(logits.shape)}, not (batch, tokens, "
                               "vocabulary)")

    def positions(self, student, teacher, inputs):
        labels, kd_mask = inputs.get(self.label_names[0]), inputs.get(KD_MASK_COLUMN)
        if labels is None and kd_mask is None:
            raise ValueError(
                "a causal-lm batch without 'labels': the counted positions are those whose label is not -100 "
                "(DataCollatorForLanguageModeling(mlm=False) sets labels = input_ids, -100 on padding)"
            )
        return (
            student[:, :-1],
            teacher[:, :-1],
            labels[:, 1:] if labels is not None else None,
            kd_mask[:, 1:] if kd_mask is not None else None,
        )


class QuestionAnsweringHead(Head):
    """Extractive QA: ``start_logits`` and ``end_logits`` ``(B, L)``, stacked as ``(B, L, 2)``. KD:
    ``τ²·(mean_rows KL_start + mean_rows KL_end)/2``, each softmax over the real tokens (padding excluded, as
    the teacher cache stores real tokens only); CE: the model's own ``(CE_start + CE_end)/2`` with positions
    clamped to the sequence (positions -100: an unlabelled row)."""

    name = "question-answering"
    label_names = ("start_positions", "end_positions")
    per_token = True
    auto_class = "AutoModelForQuestionAnswering"
    pipeline_tag = "question-answering"
    peft_task_type = "QUESTION_ANS"

    def logits(self, outputs):
        return torch.stack([outputs.start_logits, outputs.end_logits], dim=-1)

    def check(self, logits, inputs, model_name):
        if logits.dim() != 3 or logits.shape[-1] != 2:
            raise _shape_error(self, model_name, f"its start/end logits stack to {tuple(logits.shape)}, not "
                               "(batch, tokens, 2)")

    def terms(self, student, teacher, inputs, temperature, kd_fn, ce_fn):
        mask = inputs.get("attention_mask")
        masked_s, masked_t = student.float(), teacher.float()
        if mask is not None:
            pad = ~mask.bool().unsqueeze(-1)
            # far below any logit even after the division by τ, yet finite (finfo.min / τ < 1 overflows to -inf,
            # and exp(-inf)·(-inf + inf) is NaN): padding gets probability 0 in both distributions
            lowest = -1e4 * max(1.0, float(temperature))
            masked_s, masked_t = masked_s.masked_fill(pad, lowest), masked_t.masked_fill(pad, lowest)
        kd = (kd_fn(masked_s[..., 0], masked_t[..., 0], temperature, reduction="none")
              + kd_fn(masked_s[..., 1], masked_t[..., 1], temperature, reduction="none")) / 2
        counted = torch.ones_like(kd, dtype=torch.bool)
        start, end = (inputs.get(name) for name in self.label_names)
        if start is None or end is None:
            return HeadTerms(kd, counted, None, None)
        start, end = start.reshape(-1), end.reshape(-1)
        labelled = (start != IGNORE_INDEX) & (end != IGNORE_INDEX)
        length = student.shape[1]
        # the model's own loss: positions are clamped to [0, length] and `length` (outside the sequence) is ignored;
        # here an ignored position is -100, the CE's own ignore label
        ignored = torch.full_like(start, IGNORE_INDEX)
        start_c, end_c = start.clamp(0, length), end.clamp(0, length)
        start_c = torch.where(labelled & (start_c < length), start_c, ignored)
        end_c = torch.where(labelled & (end_c < length), end_c, ignored)
        ce = (ce_fn(student[..., 0], start_c) + ce_fn(student[..., 1], end_c)) / 2
        wrong = labelled & ((masked_t[..., 0].argmax(-1) != start_c) | (masked_t[..., 1].argmax(-1) != end_c))
        return HeadTerms(kd, counted, ce, labelled, wrong)


SUPPORTED_HEADS = {
    head.name: head
    for head in (
        SequenceClassificationHead,
        RegressionHead,
        MultiLabelClassificationHead,
        MultipleChoiceHead,
        TokenClassificationHead,
        QuestionAnsweringHead,
        MaskedLMHead,
        CausalLMHead,
    )
}


# ---------------------------------------------------------------- data
class DataCollatorForTokenDistillation:
    """``transformers.DataCollatorForTokenClassification`` that also pads the ``kd_mask`` column (0 on padding):
    rows of a token task carry ``kd_mask`` = 1 on the positions that count for KD, so unlabelled transfer rows
    (labels all -100) still say which positions the teacher's distribution is learned on."""

    def __init__(self, tokenizer, label_pad_token_id: int = IGNORE_INDEX, pad_to_multiple_of: int | None = None):
        from transformers import DataCollatorForTokenClassification

        self.tokenizer = tokenizer
        self.inner = DataCollatorForTokenClassification(
            tokenizer, label_pad_token_id=label_pad_token_id, pad_to_multiple_of=pad_to_multiple_of
        )

    def __call__(self, features):
        masks = [f.get(KD_MASK_COLUMN) for f in features]
        stripped = [{k: v for k, v in f.items() if k != KD_MASK_COLUMN} for f in features]
        batch = self.inner(stripped)
        if any(m is not None for m in masks):
            length = batch["input_ids"].shape[1]
            right = self.tokenizer.padding_side == "right"
            rows = []
            for mask in masks:
                mask = [] if mask is None else list(mask)
                pad = [0] * (length - len(mask))
                rows.append(mask + pad if right else pad + mask)
            batch[KD_MASK_COLUMN] = torch.tensor(rows, dtype=torch.long)
        return batch
