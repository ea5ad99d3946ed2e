"""R4: the 12-layer packaged MPNet (all-mpnet-base-v2) as a teacher — its layer-intensity profile on CLINC150
before and after fine-tuning on a labelled subset (is there the early/late U-shape the SpectralKD article
shows for deep transformers?).

Needs the optional extra: pip install "hf_spectralkd[mpnet]". Run::

    python benchmarks/mpnet_profile.py --per-intent 20 --epochs 2 --out runs/mpnet_r4

Writes <out>/teacher/ (the fine-tuned classifier), <out>/profile_base.json, <out>/profile_finetuned.json and
<out>/mpnet_profile.json (both intensity curves, validation accuracy, wall times, machine).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from benchmarks.common import label_names, load_clinc, machine_info, write_json  # noqa: E402
from hf_spectralkd import collect_profile, select_layers  # noqa: E402
from hf_spectralkd.packaged_mpnet import packaged_mpnet_path  # noqa: E402
from hf_spectralkd.sampling import sample_indices  # noqa: E402


def per_intent_subset(rows, per_intent, seed):
    by_label = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        out += rng.sample(by_label[label], min(per_intent, len(by_label[label])))
    return out


def encode(tokenizer, rows, label2id, max_length):
    enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length)
    return [
        {
            "input_ids": enc["input_ids"][i],
            "attention_mask": enc["attention_mask"][i],
            "labels": label2id[row["label"]],
        }
        for i, row in enumerate(rows)
    ]


def profile(model, rows, collator, samples, seed):
    picked = [rows[i] for i in sample_indices(len(rows), samples, seed)]
    loader = DataLoader(picked, batch_size=64, collate_fn=collator)
    return collect_profile(model, loader, max_samples=samples, progress=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-intent", type=int, default=20, help="labelled training rows per intent")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=6e-5)
    parser.add_argument("--samples", type=int, default=1000, help="training rows read by each spectral profile")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="runs/mpnet_r4")
    args = parser.parse_args(argv)

    base = packaged_mpnet_path()
    os.makedirs(args.out, exist_ok=True)
    names = label_names()
    label2id = {n: i for i, n in enumerate(names)}
    tokenizer = AutoTokenizer.from_pretrained(base)
    collator = DataCollatorWithPadding(tokenizer)
    train = encode(
        tokenizer, per_intent_subset(load_clinc("train"), args.per_intent, args.seed), label2id, args.max_length
    )
    validation = encode(tokenizer, load_clinc("validation"), label2id, args.max_length)
    full_train = encode(tokenizer, load_clinc("train"), label2id, args.max_length)
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id
    )
    result = {"base": base, "settings": vars(args), "machine": machine_info()}

    start = time.time()
    before = profile(model, full_train, collator, args.samples, args.seed)
    before.save(os.path.join(args.out, "profile_base.json"))
    result["base_intensity"] = [float(v) for v in before.intensity]
    result["base_profile_s"] = round(time.time() - start, 1)

    targs = TrainingArguments(
        output_dir=os.path.join(args.out, "checkpoints"),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=32,
        warmup_steps=0.1,
        per_device_eval_batch_size=128,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train, data_collator=collator)
    start = time.time()
    trainer.train()
    result["finetune_s"] = round(time.time() - start, 1)
    trainer.save_model(os.path.join(args.out, "teacher"))
    tokenizer.save_pretrained(os.path.join(args.out, "teacher"))
    preds = trainer.predict(validation)
    result["validation_accuracy"] = float((preds.predictions.argmax(-1) == preds.label_ids).mean())
    model.eval()
    after = profile(model, full_train, collator, args.samples, args.seed)
    after.save(os.path.join(args.out, "profile_finetuned.json"))
    result["finetuned_intensity"] = [float(v) for v in after.intensity]
    for k in (3, 4, 6):
        result[f"topk_{k}_base"] = select_layers(before.intensity, k, strategy="topk")
        result[f"topk_{k}_finetuned"] = select_layers(after.intensity, k, strategy="topk")
    write_json(os.path.join(args.out, "mpnet_profile.json"), result)
    print({k: v for k, v in result.items() if k != "machine"})


if __name__ == "__main__":
    main()
