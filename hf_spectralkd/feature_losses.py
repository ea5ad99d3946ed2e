"""The feature-alignment terms besides the frequency term (docs/method.md, "Alignment terms"): pure math, no Trainer.

* :func:`hidden_mse_loss` — token-space MSE of one aligned layer pair over the real tokens (the ``mse`` alignment;
  FitNets / TinyBERT's hidden-state loss, TextBrewer's ``hidden_mse``);
* :func:`relation_kl_loss` / :func:`attention_transfer_loss` — MiniLM's self-attention transfer (the ``attention``
  alignment): KL between the teacher's and the student's attention distributions ``softmax(Q·Kᵀ/√d)`` plus the
  value-relation KL ``softmax(V·Vᵀ/√d)``, over *relation heads* (MiniLMv2): the concatenated projections are split
  into the same number ``R`` of heads on both sides, so teacher and student may have different head counts and
  widths.

Every term is computed in float32 and normalised by the real tokens, so padding never changes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["ALIGNMENTS", "attention_transfer_loss", "hidden_mse_loss", "relation_kl_loss"]

#: the ``alignment`` choices of the config: the frequency term (SpectralKD), hidden-state MSE, attention transfer
ALIGNMENTS = ("frequency", "mse", "attention")


def _pool_width(x: torch.Tensor, width: int) -> torch.Tensor:
    if x.shape[-1] == width:
        return x
    shape = x.shape
    return F.adaptive_avg_pool1d(x.reshape(-1, 1, shape[-1]), width).reshape(*shape[:-1], width)


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, attention_mask, what: str):
    if student.dim() != 3 or teacher.dim() != 3:
        raise ValueError(f"{what} takes (N, L, D) token tensors, got shapes {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(f"{what}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ in batch "
                         "or sequence length (teacher and student must see the same tokenization)")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(student.shape[:2]):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                         f"{tuple(student.shape[:2])} (batch, tokens)")


def hidden_mse_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_{real tokens} Σ_d (s − t)² / (#real tokens · D)`` of one ``(N, L, D)`` pair; the wider hidden axis is
    adaptive-average-pooled to the narrower one (give the student a learned ``projection`` to map it instead).
    Zero (attached to the graph) when the mask selects no token."""
    _check_pair(student_hidden, teacher_hidden, attention_mask, "hidden_mse_loss")
    width = min(student_hidden.shape[-1], teacher_hidden.shape[-1])
    s = _pool_width(student_hidden.float(), width)
    t = _pool_width(teacher_hidden.float(), width)
    squared = (s - t).pow(2).sum(-1)  # (N, L)
    if attention_mask is None:
        return squared.mean() / width
    mask = attention_mask.to(device=s.device, dtype=s.dtype)
    real = mask.sum()
    if real == 0:
        return s.sum() * 0.0
    return (squared * mask).sum() / (real * width)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, length, width = x.shape
    if width % heads:
        raise ValueError(f"a {width}-wide projection cannot be split into {heads} relation heads: "
                         "attention_relation_heads must divide the width of teacher and student")
    return x.float().reshape(n, length, heads, width // heads).transpose(1, 2)  # (N, R, L, d)


def _relation_log_probs(a: torch.Tensor, b: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    scores = a @ b.transpose(-1, -2) / math.sqrt(a.shape[-1])  # (N, R, L, L)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], -1e9)  # finite: no inf - inf at padded keys
    return F.log_softmax(scores, dim=-1)


def relation_kl_loss(student_a: torch.Tensor, student_b: torch.Tensor, teacher_a: torch.Tensor,
                     teacher_b: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     heads: int = 1) -> torch.Tensor:
    """``KL(softmax(T_a·T_bᵀ/√d) ‖ softmax(S_a·S_bᵀ/√d))`` of one pair, each side split into ``heads`` relation heads
    (``d`` = its width / ``heads``), summed over the real keys, averaged over the real queries and the heads.

    ``(a, b) = (Q, K)`` gives the attention distributions (MiniLM's attention transfer), ``(V, V)`` the value
    relation. Padded keys get probability 0 on both sides; padded queries are left out."""
    _check_pair(student_a, teacher_a, attention_mask, "relation_kl_loss")
    s_log = _relation_log_probs(_split_heads(student_a, heads), _split_heads(student_b, heads),
                                None if attention_mask is None else attention_mask.bool().to(student_a.device))
    t_log = _relation_log_probs(_split_heads(teacher_a, heads), _split_heads(teacher_b, heads),
                                None if attention_mask is None else attention_mask.bool().to(teacher_a.device))
    t_log = t_log.to(s_log.device).detach()
    per_key = t_log.exp() * (t_log - s_log)  # (N, R, L, L)
    if attention_mask is None:
        return per_key.sum(-1).mean()
    mask = attention_mask.to(device=s_log.device, dtype=s_log.dtype)
    keys = attention_mask.bool().to(s_log.device)[:, None, None, :]
    per_key = torch.where(keys, per_key, torch.zeros_like(per_key))  # padded keys: p_t is ~0 there; exactly 0 here
    per_query = per_key.sum(-1)  # (N, R, L)
    real = mask.sum()
    if real == 0:
        return per_query.sum() * 0.0
    return (per_query * mask[:, None, :]).sum() / (real * heads)


def attention_transfer_loss(student_qkv, teacher_qkv, attention_mask: torch.Tensor | None = None,
                            heads: int = 1) -> torch.Tensor:
    """MiniLM's self-attention transfer of one layer pair: attention-distribution KL (``Q·Kᵀ``) plus value-relation
    KL (``V·Vᵀ``), each :func:`relation_kl_loss` over ``heads`` relation heads. ``student_qkv`` / ``teacher_qkv``:
    the ``(Q, K, V)`` projections of the layer, ``(N, L, D)`` each (the student's and the teacher's widths may
    differ)."""
    (sq, sk, sv), (tq, tk, tv) = student_qkv, teacher_qkv
    return (relation_kl_loss(sq, sk, tq, tk, attention_mask, heads)
            + relation_kl_loss(sv, sv, tv, tv, attention_mask, heads))
