"""``hf-spectralkd evaluate``: accuracy and macro-F1 of any saved classifier on a data split."""

from __future__ import annotations

import argparse
import json
import os

from . import check_at_least_one

HELP = "Evaluate a saved classifier (a directory or Hub id) on a dataset split: accuracy and macro-F1."


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help=HELP, description=HELP,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="saved classifier directory (with its tokenizer) or Hub id")
    parser.add_argument("--data", required=True,
                        help="data: a directory with train/validation/test .jsonl/.csv/.parquet files, one data file, or a Hub dataset id")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"], help="split to evaluate")
    parser.add_argument("--text-column", default="text", help="text column")
    parser.add_argument("--text-pair-column", default=None, help="second text column for pair classification")
    parser.add_argument("--label-column", default="label", help="label column")
    parser.add_argument("--max-length", type=int, default=128, help="truncation length in tokens")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate at most this many examples")
    parser.add_argument("--batch-size", type=int, default=128, help="evaluation batch size")
    parser.add_argument("--task", default="text-classification", help="task of the model (see hf_spectralkd.tasks)")
    parser.add_argument("--output", default=None, help="also write the metrics to this JSON file")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import evaluate_model
    from ..recipes import DataSection, EvaluationSection, Recipe, TeacherSection
    from ..tasks import get_task

    check_at_least_one(args, "max_samples", "batch_size", "max_length")
    if args.output and os.path.isdir(os.path.expanduser(args.output)):
        raise ValueError(f"--output {args.output!r} is a directory: pass the path of a JSON file to write")
    task = get_task(args.task)
    model_ref = task.resolve_reference(args.model, "--model")
    model = task.load_classifier(None, model_ref, what="--model")
    from ..adapters import get_adapter

    adapter = get_adapter(model)  # transformers or timm: label metadata through the adapter
    id2label = adapter.id2label(model) or {}
    names = [str(id2label.get(i, f"LABEL_{i}")) for i in range(adapter.num_labels(model))]
    fixed = None if all(n.startswith("LABEL_") for n in names) else names
    data = DataSection(text_column=args.text_column, text_pair_column=args.text_pair_column, label_column=args.label_column,
                       max_length=args.max_length, max_eval_samples=args.max_samples, label_names=fixed)
    if os.path.isfile(args.data):
        setattr(data, f"{args.split}_file", os.path.abspath(args.data))
    elif not os.path.exists(args.data) and args.data.startswith((".", "/", "~")):
        raise ValueError(f"--data {args.data!r} does not exist")
    else:
        data.source = os.path.abspath(args.data) if os.path.exists(args.data) else args.data
    if fixed is None and not (data.source or data.train_file):
        raise ValueError(f"{args.model} has no label names (id2label is LABEL_i): pass a data directory with a train file")
    recipe = Recipe(name="evaluate", task=args.task, teacher=TeacherSection(model=model_ref), data=data,
                    evaluation=EvaluationSection(split="test" if args.split == "test" else "validation", baseline=False))
    task_data = task.load_data(recipe) if args.split != "train" else None
    if task_data is None:
        from ..tasks import TaskData

        splits, label_names, info = __import__("hf_spectralkd.data", fromlist=["load_text_data"]).load_text_data(data, need_test=False)
        task_data = TaskData(splits, label_names, info)
    if args.split not in task_data.splits:
        raise ValueError(f"--data {args.data!r} has no {args.split} split (found {', '.join(task_data.splits)})")
    task_data.splits = type(task_data.splits)({args.split: task_data.splits[args.split]})
    if args.max_samples and len(task_data.splits[args.split]) > args.max_samples:
        task_data.splits[args.split] = task_data.splits[args.split].select(range(args.max_samples))
    check = getattr(task, "check_labels", None)
    if check is not None:
        check(model, task_data.label_names, "--model")
    processor = task.load_processor(recipe, model_ref)
    prepared = task.prepare_datasets(recipe, task_data, processor)
    result = evaluate_model(model, prepared[args.split], task.data_collator(processor), batch_size=args.batch_size,
                            trainer_class=task.trainer_class())
    m = result["metrics"]
    print(f"{args.model} on {args.split} ({result['num_samples']} examples): accuracy {100 * m['accuracy']:.2f}%, "
          f"macro-F1 {100 * m['macro_f1']:.2f}%, {result['throughput_samples_per_s']:.0f} samples/s")
    payload = {"model": args.model, "data": args.data, "split": args.split, **result}
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
    return 0
