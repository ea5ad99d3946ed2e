"""ATIS slot filling (token classification): no-KD / logit KD / hidden-MSE / SpectralKD students, 3 seeds.

Two regimes, every method at the shipped defaults (alpha 0.9, temperature 1, beta 0.2, topk selection; nothing is
chosen from these runs, so the test split is read once per run):

* ``full``: every labelled training sentence (4,478), a 3-block student copied from the packaged MiniLM-L6
  teacher's blocks [2, 4, 6];
* ``low``: 10 % of the labelled sentences (a seeded sample, 448) + the other 90 % as an unlabelled transfer set
  (labels -100, a word-start ``kd_mask``); the teacher is fine-tuned on the 10 % only.

The teacher (MiniLM-L6 + a token head, fine-tuned with transformers' ``Trainer``, best epoch by validation F1) is
trained once per regime and cached in ``benchmarks/.cache``; students read its outputs from a teacher cache. The
no-KD student trains on the labelled sentences only, for the same number of steps as the distilled ones. Hidden-MSE
aligns the uniform layer pairs (as the CLINC150 regimes do). Entity-level F1 by ``seqeval``.

    python benchmarks/atis_slots.py --regime full --seeds 0 1 2
    python benchmarks/atis_slots.py --regime low --seeds 0 1 2
    python benchmarks/atis_slots.py --summarize
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import RESULTS_DIR, ROOT, HiddenMSEDistillationTrainer, machine_info  # noqa: E402

ATIS = os.path.join(ROOT, "..", "shared", "datasets", "atis")
CACHE = os.path.join(ROOT, "benchmarks", ".cache", "atis")
OUT = os.path.join(RESULTS_DIR, "atis_slots.json")
METHODS = {
    "no_kd": dict(alpha=0.0, beta=0.0),
    "logit_kd": dict(beta=0.0),
    "hidden_mse": dict(layer_selection="uniform"),
    "spectralkd": dict(),
}
LOW_FRACTION = 0.1
MAX_LENGTH = 64
STUDENT = dict(learning_rate=1e-4, num_train_epochs=2, per_device_train_batch_size=32, warmup_steps=0.06)
TEACHER = {"full": dict(num_train_epochs=3, learning_rate=1e-4), "low": dict(num_train_epochs=10, learning_rate=1e-4)}


def read(split):
    with open(os.path.join(ATIS, f"{split}.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def regime_rows(regime):
    train = read("train")
    if regime == "full":
        return train, []
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    keep = int(round(LOW_FRACTION * len(train)))
    return [train[i] for i in sorted(order[:keep])], [train[i] for i in sorted(order[keep:])]


def encode(tokenizer, rows, label2id, labelled=True):
    """``run_ner.py``'s alignment: the first sub-word of each word labelled, the others -100; ``kd_mask`` = 1 there."""
    from datasets import Dataset

    encoded = tokenizer([r["tokens"] for r in rows], truncation=True, max_length=MAX_LENGTH, is_split_into_words=True)
    out = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": [],
           "kd_mask": []}
    for i, row in enumerate(rows):
        previous, labels, mask = None, [], []
        for word in encoded.word_ids(batch_index=i):
            first = word is not None and word != previous
            labels.append(label2id[row["tags"][word]] if first and labelled else -100)
            mask.append(int(first))
            previous = word
        out["labels"].append(labels)
        out["kd_mask"].append(mask)
    return Dataset.from_dict(out)


def word_level_metrics(trainer, tokenizer, rows, names) -> dict:
    """Entity-level P/R/F1 (seqeval) and word accuracy against the raw gold tags of ``rows``: a gold tag the training
    split never has (ATIS: 1 validation and 6 test words) stays in the gold sequence and counts as a miss, instead
    of being dropped."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    label2id = {n: i for i, n in enumerate(names)}
    known = [dict(r, tags=[t if t in label2id else "O" for t in r["tags"]]) for r in rows]
    data = encode(tokenizer, known, label2id)
    masks = data["kd_mask"]
    predicted = trainer.predict(data.remove_columns(["labels", "kd_mask"])).predictions.argmax(-1)
    gold_tags, pred_tags = [], []
    for row, mask, pred in zip(rows, masks, predicted, strict=True):
        words = [names[int(pred[j])] for j, m in enumerate(mask) if m]
        words += ["O"] * (len(row["tags"]) - len(words))  # words cut by max_length: predicted "O"
        gold_tags.append(list(row["tags"]))
        pred_tags.append(words[: len(row["tags"])])
    correct = sum(p == g for rp, rg in zip(pred_tags, gold_tags, strict=True) for p, g in zip(rp, rg, strict=True))
    return {"f1": f1_score(gold_tags, pred_tags, zero_division=0),
            "precision": precision_score(gold_tags, pred_tags, zero_division=0),
            "recall": recall_score(gold_tags, pred_tags, zero_division=0),
            "accuracy": correct / sum(len(r) for r in gold_tags)}


def seqeval_metrics(id2label):
    import numpy as np
    from seqeval.metrics import f1_score, precision_score, recall_score

    def compute(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        gold_tags, pred_tags = [], []
        for pred_row, gold_row in zip(predicted, prediction.label_ids, strict=True):
            kept = [(int(p), int(g)) for p, g in zip(pred_row, gold_row, strict=True) if g != -100]
            gold_tags.append([id2label[g] for _, g in kept])
            pred_tags.append([id2label[p] for p, _ in kept])
        correct = sum(p == g for rp, rg in zip(pred_tags, gold_tags, strict=True) for p, g in zip(rp, rg, strict=True))
        return {"f1": f1_score(gold_tags, pred_tags, zero_division=0),
                "precision": precision_score(gold_tags, pred_tags, zero_division=0),
                "recall": recall_score(gold_tags, pred_tags, zero_division=0),
                "accuracy": correct / max(sum(len(r) for r in gold_tags), 1)}

    return compute


def labels_of(train_rows):
    return sorted({t for row in read("train") for t in row["tags"]} | {t for row in train_rows for t in row["tags"]})


def teacher_for(regime, log=print):
    """The regime's fine-tuned teacher (trained once, then loaded), its tokenizer and the label list."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, Trainer, TrainingArguments

    from hf_spectralkd.adapters.heads import DataCollatorForTokenDistillation
    from hf_spectralkd.loading import packaged_minilm_path

    directory = os.path.join(CACHE, f"teacher_{regime}")
    labelled, _ = regime_rows(regime)
    names = labels_of(labelled)
    if os.path.isfile(os.path.join(directory, "config.json")):
        return AutoModelForTokenClassification.from_pretrained(directory), AutoTokenizer.from_pretrained(directory), \
            names, json.load(open(os.path.join(directory, "teacher_metrics.json")))
    base = packaged_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    label2id = {n: i for i, n in enumerate(names)}
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id)
    known = [dict(r, tags=[t if t in label2id else "O" for t in r["tags"]]) for r in read("validation")]
    validation = encode(tokenizer, known, label2id)  # epoch choice only; reported F1s use the raw gold tags
    start = time.time()
    args = TrainingArguments(
        output_dir=directory + ".train", per_device_train_batch_size=32, per_device_eval_batch_size=128,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="f1", report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
        warmup_steps=0.06, logging_steps=50, **TEACHER[regime])
    trainer = Trainer(model=model, args=args, train_dataset=encode(tokenizer, labelled, label2id).remove_columns(
        ["kd_mask"]), eval_dataset=validation.remove_columns(["kd_mask"]),
        data_collator=DataCollatorForTokenDistillation(tokenizer), compute_metrics=seqeval_metrics(names))
    trainer.train()
    metrics = {"validation_f1": word_level_metrics(trainer, tokenizer, read("validation"), names)["f1"],
               "train_rows": len(labelled), "wall_s": round(time.time() - start, 1), **TEACHER[regime]}
    trainer.save_model(directory)
    tokenizer.save_pretrained(directory)
    json.dump(metrics, open(os.path.join(directory, "teacher_metrics.json"), "w"), indent=1)
    shutil.rmtree(directory + ".train", ignore_errors=True)
    log(f"[atis {regime}] teacher trained: validation F1 {metrics['validation_f1']:.4f} ({metrics['wall_s']} s)")
    return trainer.model, tokenizer, names, metrics


def run_one(regime, method, seed, teacher, tokenizer, names, log=print) -> dict:
    import torch

    from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, build_student
    from hf_spectralkd.adapters.heads import DataCollatorForTokenDistillation

    label2id = {n: i for i, n in enumerate(names)}
    labelled, transfer = regime_rows(regime)
    train = encode(tokenizer, labelled, label2id)
    if transfer and method != "no_kd":
        from datasets import concatenate_datasets

        train = concatenate_datasets([train, encode(tokenizer, transfer, label2id, labelled=False)])
    full_steps = -(-(len(labelled) + len(transfer)) // STUDENT["per_device_train_batch_size"]) * \
        STUDENT["num_train_epochs"]
    student_args = {k: v for k, v in STUDENT.items() if k != "num_train_epochs"}
    torch.manual_seed(seed)
    student = build_student(teacher, 3, "uniform")
    output = os.path.join(CACHE, "runs", f"{regime}_{method}_{seed}")
    args = SpectralDistillationConfig(
        output_dir=output, max_steps=full_steps, per_device_eval_batch_size=128, report_to="none", use_cpu=True,
        seed=seed, save_strategy="no", logging_steps=50, disable_tqdm=True, spectral_dynamics=False,
        **student_args, **METHODS[method])
    trainer_class = HiddenMSEDistillationTrainer if method == "hidden_mse" else SpectralDistillationTrainer
    trainer = trainer_class(
        model=student, teacher_model=teacher, args=args, train_dataset=train,
        data_collator=DataCollatorForTokenDistillation(tokenizer), compute_metrics=seqeval_metrics(names),
        teacher_cache=os.path.join(CACHE, f"teacher_cache_{regime}_{method}"),
    )
    start = time.time()
    trainer.train()
    wall = time.time() - start
    result = {"regime": regime, "method": method, "seed": seed, "steps": trainer.state.global_step,
              "train_rows": len(train), "labelled_rows": len(labelled), "train_wall_s": round(wall, 1),
              "teacher_layers": trainer.layer_map.teacher_layers, "student_layers": trainer.layer_map.student_layers}
    for split in ("validation", "test"):  # no choice is made from these runs: test read once per run
        metrics = word_level_metrics(trainer, tokenizer, read(split), names)
        for key in ("f1", "precision", "recall", "accuracy"):
            result[f"{split}_{key}"] = round(100 * metrics[key], 2)
    shutil.rmtree(output, ignore_errors=True)
    log(f"[atis {regime}] {method} seed {seed}: validation F1 {result['validation_f1']}, test F1 "
        f"{result['test_f1']} ({result['steps']} steps, {wall:.0f} s)")
    return result


def load_results() -> dict:
    return json.load(open(OUT)) if os.path.isfile(OUT) else {"runs": [], "teachers": {}}


def save_results(results):
    tmp = OUT + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(results, handle, indent=1)
    os.replace(tmp, OUT)


def _cell(values) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}" + ("" if len(values) >= 3 else f" (n={len(values)})")


def summarize() -> str:
    """Markdown tables of entity F1 (test, then validation), mean ± std over seeds, and the paired differences."""
    results = load_results()
    lines = []
    for split in ("test", "validation"):
        lines += [f"{split} entity F1 (%):", "",
                  "| regime | teacher | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 2) + "|"]
        for regime in ("full", "low"):
            runs = [r for r in results["runs"] if r["regime"] == regime]
            if not runs:
                continue
            cells = [_cell([r[f"{split}_f1"] for r in runs if r["method"] == m]) for m in METHODS]
            teacher = results["teachers"].get(regime, {})
            key = f"{split}_f1"
            teacher_f1 = f"{100 * teacher[key]:.2f}" if key in teacher else "–"
            lines.append(f"| {regime} | {teacher_f1} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["paired test-F1 differences (same seed), mean ± std:", ""]
    for regime in ("full", "low"):
        by = {(r["method"], r["seed"]): r["test_f1"] for r in results["runs"] if r["regime"] == regime}
        seeds = sorted({seed for _, seed in by})
        for a, b in (("spectralkd", "logit_kd"), ("spectralkd", "no_kd"), ("logit_kd", "no_kd"),
                     ("hidden_mse", "logit_kd")):
            diffs = [by[(a, s)] - by[(b, s)] for s in seeds if (a, s) in by and (b, s) in by]
            if diffs:
                lines.append(f"- {regime}: {a} − {b}: {_cell(diffs)} pt over {len(diffs)} seeds")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=("full", "low"), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize())
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    teacher, tokenizer, names, teacher_metrics = teacher_for(args.regime)
    results = load_results()
    results["machine"] = machine_info()
    if args.regime not in results["teachers"]:
        from transformers import Trainer, TrainingArguments

        from hf_spectralkd.adapters.heads import DataCollatorForTokenDistillation

        evaluator = Trainer(model=teacher, args=TrainingArguments(output_dir=os.path.join(CACHE, "eval"),
                                                                   per_device_eval_batch_size=128, report_to="none",
                                                                   use_cpu=True, disable_tqdm=True),
                            data_collator=DataCollatorForTokenDistillation(tokenizer))
        teacher_metrics = {**teacher_metrics,
                           "test_f1": word_level_metrics(evaluator, tokenizer, read("test"), names)["f1"]}
        results["teachers"][args.regime] = teacher_metrics
        save_results(results)
    for seed in args.seeds:
        for method in args.methods:
            done = any(r["regime"] == args.regime and r["method"] == method and r["seed"] == seed
                       for r in results["runs"])
            if done:
                continue
            results["runs"].append(run_one(args.regime, method, seed, teacher, tokenizer, names))
            save_results(results)  # after every run: partial results survive an interruption
    print(summarize())


if __name__ == "__main__":
    main()
