"""Quality benchmark: CLINC150 test accuracy and macro-F1 of a 3-layer student distilled from a fine-tuned
MiniLM-L6 teacher, every method under the same budget, several seeds (mean ± std).

Run::

    python benchmarks/quality.py                       # all methods, 3 seeds -> benchmarks/results/quality.json
    python benchmarks/quality.py --methods no_kd logit_kd spectralkd_topk --train-samples 4000

The teacher is fine-tuned once: ``--teacher DIR`` if given, else the default recipe's teacher
(``runs/clinc150_minilm/teacher`` once it has ``fingerprint.json``), else a cached one under
``benchmarks/.cache/teacher`` (fine-tuned here on first use: 2 epochs, lr 1e-4, batch 32, max_length 64).
Students: 3 blocks copied from teacher blocks (uniformly spaced ``[2, 4, 6]`` unless the method says
``init=selected``, the spectrally selected ones), plus the teacher's embeddings, pooler and head.
The JSON is rewritten after every run, so partial results survive an interruption.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    ROOT,
    HiddenMSEDistillationTrainer,
    label_names,
    load_clinc,
    machine_info,
    student_from_teacher,
    uniform_layers,
    write_json,
)
from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, collect_profile, select_layers  # noqa: E402

RECIPE_TEACHER = os.path.join(ROOT, "runs", "clinc150_minilm", "teacher")
CACHED_TEACHER = os.path.join(ROOT, "benchmarks", ".cache", "teacher")

# name -> how the student is built and trained. kind: spectral (SpectralDistillationTrainer), mse (same
# objective with a hidden-state MSE term), textbrewer (TextBrewer GeneralDistiller). Listed by importance:
# the runs go in this order, so the main comparisons finish first.
METHODS = {
    "no_kd": dict(kind="spectral", alpha=0.0, beta=0.0),
    "logit_kd": dict(kind="spectral", beta=0.0),
    "spectralkd_topk": dict(kind="spectral", selection="topk"),
    "spectralkd_topk_init_selected": dict(kind="spectral", selection="topk", init="selected"),
    "hidden_mse_uniform": dict(kind="mse", selection="uniform"),
    "textbrewer_hidden_mse": dict(kind="textbrewer", selection="uniform"),
    "spectralkd_uniform": dict(kind="spectral", selection="uniform"),
    "spectralkd_ends": dict(kind="spectral", selection="ends"),
    "spectralkd_axis_hidden": dict(kind="spectral", selection="topk", fft_axis="hidden"),
    "spectralkd_axis_tokens_hidden": dict(kind="spectral", selection="topk", fft_axis="tokens+hidden"),
    "spectralkd_magnitude": dict(kind="spectral", selection="topk", variant="magnitude"),
    "spectralkd_beta1": dict(kind="spectral", selection="topk", beta=1.0),
    "spectralkd_beta5": dict(kind="spectral", selection="topk", beta=5.0),
    "logit_kd_init_selected": dict(kind="spectral", beta=0.0, init="selected"),
    "spectralkd_one_layer": dict(kind="spectral", selection="topk", num_aligned=1),
}
DEFAULTS = dict(
    alpha=0.9,
    temperature=1.0,
    beta=0.2,
    selection="topk",
    fft_axis="tokens",
    variant="complex",
    init="uniform",
    num_aligned=None,
)


def _device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def encode(tokenizer, rows, label2id, max_length=64) -> list:
    enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length)
    return [
        {
            "input_ids": enc["input_ids"][i],
            "attention_mask": enc["attention_mask"][i],
            **({"token_type_ids": enc["token_type_ids"][i]} if "token_type_ids" in enc else {}),
            "labels": label2id[r["label"]],
        }
        for i, r in enumerate(rows)
    ]


def finetune_teacher(base, out_dir, epochs=2, lr=1e-4, batch_size=32, max_length=64, seed=0) -> str:
    """Fine-tune ``base`` (packaged MiniLM by default) on CLINC150 train with a plain ``transformers.Trainer``."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    names = label_names()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        dtype=torch.float32,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    train = encode(tokenizer, load_clinc("train"), model.config.label2id, max_length)
    tmp = tempfile.mkdtemp(prefix="teacher-ft-")
    args = TrainingArguments(
        output_dir=tmp,
        learning_rate=lr,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_steps=100,
        disable_tqdm=True,
        use_cpu=_device() == "cpu",
    )
    start = time.time()
    Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer)).train()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_json(
        os.path.join(out_dir, "benchmark_teacher.json"),
        {
            "base": base,
            "epochs": epochs,
            "learning_rate": lr,
            "batch_size": batch_size,
            "max_length": max_length,
            "seed": seed,
            "finetune_s": time.time() - start,
        },
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


@torch.inference_mode()
def probe_teacher(base, out_dir, train_samples=6000, max_length=64, seed=0) -> str:
    """Cheap teacher for a CPU-starved machine: the pretrained body kept as it is, and the classification head fitted
    as a multinomial logistic regression (scikit-learn) on the body's pooled outputs of ``train_samples`` rows."""
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = label_names()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        dtype=torch.float32,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    ).eval()
    rows = load_clinc("train", limit=train_samples, seed=seed)
    start = time.time()
    feats = []
    for i in range(0, len(rows), 64):
        enc = tokenizer(
            [r["text"] for r in rows[i : i + 64]],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out = model.base_model(**enc)
        feats.append(out.pooler_output)  # what the sequence-classification head reads (after dropout)
    x = torch.cat(feats).numpy()
    y = [model.config.label2id[r["label"]] for r in rows]
    clf = LogisticRegression(max_iter=300, C=10.0).fit(x, y)
    model.classifier.weight.copy_(torch.tensor(clf.coef_, dtype=torch.float32))
    model.classifier.bias.copy_(torch.tensor(clf.intercept_, dtype=torch.float32))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_json(
        os.path.join(out_dir, "benchmark_teacher.json"),
        {
            "base": base,
            "mode": "linear probe (frozen pretrained body, logistic-regression head)",
            "train_samples": len(rows),
            "C": 10.0,
            "max_length": max_length,
            "seed": seed,
            "fit_s": time.time() - start,
        },
    )
    return out_dir


def resolve_teacher(explicit=None, base=None, epochs=2, mode="finetune") -> tuple:
    if explicit:
        return explicit, "given"
    if os.path.isfile(os.path.join(RECIPE_TEACHER, "fingerprint.json")):
        return RECIPE_TEACHER, "recipe"
    from hf_spectralkd.loading import packaged_minilm_path

    if mode == "probe":
        target = CACHED_TEACHER + "_probe"
        if not os.path.isfile(os.path.join(target, "config.json")):
            print(f"fitting the linear-probe benchmark teacher into {target} ...", flush=True)
            probe_teacher(base or packaged_minilm_path(), target)
        return target, "benchmark-cache (linear probe)"
    if not os.path.isfile(os.path.join(CACHED_TEACHER, "config.json")):
        print(f"fine-tuning the benchmark teacher into {CACHED_TEACHER} ...", flush=True)
        finetune_teacher(base or packaged_minilm_path(), CACHED_TEACHER, epochs=epochs)
    return CACHED_TEACHER, "benchmark-cache"


def evaluate_predictions(logits, labels) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    preds = logits.argmax(-1)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, average="macro")),
    }


@torch.inference_mode()
def predict(model, rows, collator, batch_size=256) -> dict:
    model.eval()
    device = next(model.parameters()).device
    all_logits, all_labels = [], []
    for start in range(0, len(rows), batch_size):
        batch = collator(rows[start : start + batch_size])
        labels = batch.pop("labels")
        all_logits.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu())
        all_labels.append(labels)
    return evaluate_predictions(torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy())


def _train_textbrewer(teacher, student, train, collator, spec, budget, seed, out_dir):
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    device = _device()
    student.to(device)
    teacher.to(device).eval()
    pairs = list(zip(range(1, len(spec["teacher_layers"]) + 1), spec["teacher_layers"], strict=True))
    matches = [
        {"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "hidden_mse", "weight": spec["beta"]}
        for s, t in pairs
    ]
    distiller = GeneralDistiller(
        train_config=TrainingConfig(device=device, output_dir=out_dir, log_dir=None),
        distill_config=DistillationConfig(
            temperature=spec["temperature"],
            hard_label_weight=1 - spec["alpha"],
            kd_loss_type="ce",
            kd_loss_weight=spec["alpha"],
            intermediate_matches=matches,
        ),
        model_T=teacher,
        model_S=student,
        adaptor_T=lambda b, o: {"logits": o.logits, "hidden": o.hidden_states, "inputs_mask": b["attention_mask"]},
        adaptor_S=lambda b, o: {
            "logits": o.logits,
            "hidden": o.hidden_states,
            "inputs_mask": b["attention_mask"],
            "losses": o.loss,
        },
    )
    gen = torch.Generator().manual_seed(seed)
    # TextBrewer dispatches on `type(batch) is dict`; the collator returns a BatchEncoding
    loader = torch.utils.data.DataLoader(
        train, batch_size=budget["batch_size"], shuffle=True, collate_fn=lambda b: dict(collator(b)), generator=gen
    )
    steps = len(loader) * budget["epochs"]
    optimizer = torch.optim.AdamW(student.parameters(), lr=budget["learning_rate"], weight_decay=0.0)
    distiller.train(
        optimizer,
        loader,
        num_epochs=budget["epochs"],
        scheduler_class=get_linear_schedule_with_warmup,
        scheduler_args={"num_warmup_steps": 0, "num_training_steps": steps},
        max_grad_norm=1.0,
        output_hidden_states=True,
    )
    return student


def run_one(name, spec, teacher, tokenizer, train, test, selected, budget, seed, work_dir) -> dict:
    from transformers import DataCollatorWithPadding

    n_teacher = teacher.config.num_hidden_layers
    k = budget["student_layers"]
    uniform = uniform_layers(n_teacher, k)
    init_layers = selected if spec["init"] == "selected" else uniform
    student = student_from_teacher(teacher, init_layers, seed=seed)
    collator = DataCollatorWithPadding(tokenizer)
    out_dir = os.path.join(work_dir, f"{name}-{seed}")
    torch.manual_seed(seed)
    start = time.time()
    record = {"method": name, "seed": seed, "init_layers": init_layers}
    if spec["kind"] == "textbrewer":
        spec = {**spec, "teacher_layers": uniform}
        student = _train_textbrewer(teacher, student, train, collator, spec, budget, seed, out_dir)
        record["teacher_layers"] = uniform
    else:
        layer_kwargs = {}
        if spec["beta"] > 0:
            if spec["kind"] == "mse" or spec["selection"] == "uniform":
                layer_kwargs = dict(
                    layer_selection="manual",
                    teacher_layers=uniform if spec["num_aligned"] is None else uniform[-spec["num_aligned"] :],
                )
            else:
                layer_kwargs = dict(layer_selection=spec["selection"], num_aligned_layers=spec["num_aligned"])
        args = SpectralDistillationConfig(
            output_dir=out_dir,
            report_to="none",
            alpha=spec["alpha"],
            temperature=spec["temperature"],
            beta=spec["beta"],
            fft_axis=spec["fft_axis"],
            freq_loss_variant=spec["variant"],
            spectral_dynamics=False,
            selection_samples=512,
            learning_rate=budget["learning_rate"],
            num_train_epochs=budget["epochs"],
            per_device_train_batch_size=budget["batch_size"],
            per_device_eval_batch_size=128,
            seed=seed,
            data_seed=seed,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=50,
            disable_tqdm=True,
            max_grad_norm=1.0,
            use_cpu=_device() == "cpu",
            **layer_kwargs,
        )
        cls = HiddenMSEDistillationTrainer if spec["kind"] == "mse" else SpectralDistillationTrainer
        trainer = cls(model=student, teacher_model=teacher, args=args, train_dataset=train, data_collator=collator)
        trainer.train()
        layer_map = trainer.layer_map
        record["teacher_layers"] = layer_map.teacher_layers
        record["student_layers"] = layer_map.student_layers
        losses = [h for h in trainer.state.log_history if "loss" in h]
        if losses:
            record["first_log"] = {k: losses[0].get(k) for k in ("loss", "ce_loss", "kd_loss", "freq_loss")}
            record["last_log"] = {k: losses[-1].get(k) for k in ("loss", "ce_loss", "kd_loss", "freq_loss")}
        student = trainer.model
        del trainer
    record["train_s"] = time.time() - start
    record.update(predict(student, test, collator))
    shutil.rmtree(out_dir, ignore_errors=True)
    return record


def aggregate(runs) -> dict:
    out = {}
    for name in dict.fromkeys(r["method"] for r in runs):
        rs = [r for r in runs if r["method"] == name]
        acc = [r["accuracy"] for r in rs]
        f1 = [r["macro_f1"] for r in rs]
        out[name] = {
            "accuracy_mean": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "macro_f1_mean": statistics.fmean(f1),
            "macro_f1_std": statistics.stdev(f1) if len(f1) > 1 else 0.0,
            "seeds": [r["seed"] for r in rs],
            "accuracies": acc,
            "teacher_layers": rs[0].get("teacher_layers"),
            "init_layers": rs[0]["init_layers"],
        }
    return out


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--train-samples", type=int, default=None, help="seeded subset of CLINC150 train (default: all 15000)"
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--test-samples", type=int, default=None, help="seeded subset of the test split (default: all 4500)"
    )
    parser.add_argument(
        "--teacher", default=None, help="fine-tuned teacher directory (default: recipe teacher or benchmark cache)"
    )
    parser.add_argument(
        "--teacher-base",
        default=None,
        help="base model to fine-tune when no teacher exists (default: packaged MiniLM)",
    )
    parser.add_argument(
        "--order",
        choices=["method", "seed"],
        default="method",
        help="method: every seed of a method before the next method; seed: every method for seed 0, then seed 1, ...",
    )
    parser.add_argument(
        "--teacher-mode",
        choices=["finetune", "probe"],
        default="finetune",
        help="how the cached teacher is made when no recipe teacher exists: full fine-tuning, or a linear probe "
        "(frozen body, logistic-regression head; for CPU-starved machines)",
    )
    parser.add_argument(
        "--teacher-epochs", type=float, default=3.0, help="epochs of the teacher fine-tuning when it is cached here"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "quality.json"))
    parser.add_argument("--shared-machine", type=int, default=1)
    return parser.parse_args(argv)


def _run_schedule(args, result, teacher, tokenizer, train, test, selected, budget) -> None:
    """Every (method, seed) run, in ``args.order``; ``result`` is rewritten to ``args.output`` after each run."""
    work_dir = tempfile.mkdtemp(prefix="spectralkd-quality-")
    if args.order == "method":
        schedule = [(name, seed) for name in args.methods for seed in args.seeds]
    else:
        schedule = [(name, seed) for seed in args.seeds for name in args.methods]
    failed = set()
    for name, seed in schedule:
        if name in failed:
            continue
        spec = {**DEFAULTS, **METHODS[name]}
        try:
            record = run_one(name, spec, teacher, tokenizer, train, test, selected, budget, seed, work_dir)
        except Exception as exc:
            record = {"method": name, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
            print(f"{name} seed {seed} FAILED: {record['error']}", flush=True)
            result["runs"].append(record)
            failed.add(name)
            write_json(args.output, result)
            continue
        result["runs"].append(record)
        print(
            f"{name:<32} seed {seed}: accuracy {record['accuracy']:.4f} macro-F1 {record['macro_f1']:.4f} "
            f"({record['train_s']:.0f}s, teacher layers {record.get('teacher_layers')})",
            flush=True,
        )
        result["methods"] = aggregate([r for r in result["runs"] if "error" not in r])
        write_json(args.output, result)
    shutil.rmtree(work_dir, ignore_errors=True)


def main(argv=None) -> int:
    args = _parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher_dir, teacher_source = resolve_teacher(
        args.teacher, args.teacher_base, args.teacher_epochs, args.teacher_mode
    )
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, dtype=torch.float32).to(_device()).eval()
    label2id = {str(k): int(v) for k, v in teacher.config.label2id.items()}
    train = encode(tokenizer, load_clinc("train", limit=args.train_samples, seed=1234), label2id)
    test = encode(tokenizer, load_clinc("test", limit=args.test_samples, seed=1234), label2id)
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)
    teacher_metrics = predict(teacher, test, collator)
    # the trainer's seeded random sample (CLINC150's train file is sorted by intent: its first rows are 6 intents)
    from hf_spectralkd.sampling import sample_indices

    profile_rows = [train[i] for i in sample_indices(len(train), 512, seed=42)]
    loader = torch.utils.data.DataLoader(
        profile_rows, batch_size=64, collate_fn=lambda b: {k: v for k, v in collator(b).items() if k != "labels"}
    )
    profile = collect_profile(teacher, loader)
    k = 3
    selected = select_layers(profile.intensity, k, "topk")
    budget = {
        "train_samples": len(train),
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "student_layers": k,
        "optimizer": "AdamW (Trainer default), linear decay, no warm-up, max_grad_norm 1.0",
        "max_length": 64,
    }
    result = {
        "machine": machine_info(bool(args.shared_machine)),
        "teacher": {
            "path": os.path.relpath(teacher_dir, ROOT) if teacher_dir.startswith(ROOT) else teacher_dir,
            "source": teacher_source,
            **teacher_metrics,
            "intensity": [float(v) for v in profile.intensity],
            "topk_layers": selected,
            "uniform_layers": uniform_layers(teacher.config.num_hidden_layers, k),
        },
        "budget": budget,
        "test_samples": len(test),
        "methods": {},
        "runs": [],
        "method_specs": {m: {**DEFAULTS, **METHODS[m]} for m in args.methods},
    }
    print(
        f"teacher {teacher_dir}: accuracy {teacher_metrics['accuracy']:.4f}; "
        f"intensity {[round(float(v), 4) for v in profile.intensity]}; "
        f"topk {selected}",
        flush=True,
    )
    _run_schedule(args, result, teacher, tokenizer, train, test, selected, budget)
    print(f"\n{'method':<32}{'accuracy':>18}{'macro-F1':>18}")
    for name, m in result["methods"].items():
        print(
            f"{name:<32}{m['accuracy_mean']:>10.4f} ± {m['accuracy_std']:.4f}"
            f"{m['macro_f1_mean']:>10.4f} ± {m['macro_f1_std']:.4f}"
        )
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
