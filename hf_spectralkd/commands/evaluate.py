"""``hf-spectralkd evaluate``: accuracy and macro-F1 of any saved classifier on a data split."""

from __future__ import annotations

import argparse
import os

from ..utils import write_json
from . import check_at_least_one

HELP = "Evaluate a saved classifier (a directory or Hub id) on a dataset split: accuracy and macro-F1."


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help=HELP, description=HELP,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="saved classifier directory (with its tokenizer) or Hub id")
    parser.add_argument("--data", required=True,
                        help="data: a directory with train/validation/test .jsonl/.csv/.parquet files, one data "
                             "file, or a Hub dataset id")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"], help="split to evaluate")
    parser.add_argument("--text-column", default="text", help="text column")
    parser.add_argument("--text-pair-column", default=None, help="second text column for pair classification")
    parser.add_argument("--label-column", default="label", help="label column")
    parser.add_argument("--tokens-column", default="tokens",
                        help="token-classification: the column holding each row's list of words")
    parser.add_argument("--tags-column", default="tags",
                        help="token-classification: the column holding each row's list of tags")
    parser.add_argument("--max-length", type=int, default=128, help="truncation length in tokens")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate at most this many examples")
    parser.add_argument("--batch-size", type=int, default=128, help="evaluation batch size")
    parser.add_argument("--task", default="text-classification", help="task of the model (see hf_spectralkd.tasks)")
    parser.add_argument("--output", default=None, help="also write the metrics to this JSON file")
    parser.set_defaults(func=run)


def load_evaluation_data(task, model, args):
    """The labelled ``--split`` of ``--data``, with the label names the model carries (or those of the training
    split when the model has only ``LABEL_i``)."""
    from ..tasks.sections import data_section

    label_names = task.model_label_names(model)
    columns = dict(text_column=args.text_column, text_pair_column=args.text_pair_column,
                   label_column=args.label_column)
    if task.name == "token-classification":
        columns = dict(tokens_column=args.tokens_column, tags_column=args.tags_column)
    section = data_section(args.data, args.split, max_length=args.max_length, max_eval_samples=args.max_samples,
                           label_names=label_names, **columns)
    if label_names is None and not (section.source or section.train_file):
        raise ValueError(f"{args.model} has no label names (id2label is LABEL_i): pass a data directory with a "
                         "train file")
    data = task.load_split(section, args.split, max_samples=args.max_samples)
    task.check_labels(model, data.label_names, "--model")
    return data, section


def run(args) -> int:
    from ..metrics import metric_label
    from ..pipeline import evaluate_model
    from ..tasks import get_task

    check_at_least_one(args, "max_samples", "batch_size", "max_length")
    if args.output and os.path.isdir(os.path.expanduser(args.output)):
        raise ValueError(f"--output {args.output!r} is a directory: pass the path of a JSON file to write")
    task = get_task(args.task)
    location, model = task.load_model(args.model, "--model")
    data, section = load_evaluation_data(task, model, args)
    processor = task.load_processor(None, location)
    prepared = task.prepare_splits(data.splits, processor, section)
    result = evaluate_model(model, prepared[args.split], task.data_collator(processor), batch_size=args.batch_size,
                            trainer_class=task.trainer_class(), compute_metrics=task.compute_metrics(data.label_names))
    m = result["metrics"]
    shown = ", ".join(f"{metric_label(k)} {100 * m[k]:.2f}%" for k in task.metric_names if k in m)
    print(f"{args.model} on {args.split} ({result['num_samples']} examples): {shown}, "
          f"{result['throughput_samples_per_s']:.0f} samples/s")
    if args.output:
        write_json(args.output, {"model": args.model, "data": args.data, "split": args.split, **result})
    return 0
