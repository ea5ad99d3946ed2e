"""``hf-spectralkd analyze``: spectral intensity of every layer of a model over a text dataset.

Writes ``spectral_profile.json`` and ``layer_intensity.png`` (the layer-intensity graph) to ``--output``
and prints one line per layer (``*`` marks the layers ``--select`` picks).
"""

from __future__ import annotations

import argparse
import os

from ..constants import PLOT_FILENAME, PROFILE_FILENAME
from ..spectral import SELECTION_STRATEGIES
from . import check_at_least_one, check_output_dir


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="Spectral analysis of a model's layers (layer-intensity graph + profile JSON).",
        description=(
            "Run a model once over text data with output_hidden_states=True, compute the spectral intensity of "
            "every hidden_states tensor (0 = embeddings, l = block l), print it, and write spectral_profile.json "
            "and layer_intensity.png to --output."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, default=argparse.SUPPRESS,
                        help="Local model directory, Hub id, or 'packaged:minilm' (the MiniLM-L6 shipped with the "
                             "project).")
    parser.add_argument("--data", required=True, default=argparse.SUPPRESS,
                        help="Local .jsonl/.json/.csv/.parquet file, a directory holding "
                             "<split>.jsonl/.csv/.parquet, or a Hub dataset id (needs Hub access).")
    parser.add_argument("--text-column", default="text", help="Column holding the text.")
    parser.add_argument("--text-pair-column", default=None, help="Optional second text column (sentence pairs).")
    parser.add_argument("--split", default="train", help="Dataset split to read.")
    parser.add_argument("--max-samples", type=int, default=512, help="Number of examples to analyse.")
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                        help="Analyse a seeded random sample of --max-samples examples (files sorted by label, "
                             "such as CLINC150, would otherwise give only the first few classes); --no-shuffle "
                             "reads the first N.")
    parser.add_argument("--seed", type=int, default=42,
                        help="Seed of the random sample (42 = the Trainer's default seed: the same rows its layer "
                             "selection reads).")
    parser.add_argument("--batch-size", type=int, default=32, help="Examples per forward pass.")
    parser.add_argument("--max-length", type=int, default=128, help="Truncate texts to this many tokens.")
    parser.add_argument("--select", type=int, default=None, metavar="K",
                        help="Also select K layers with --strategy and mark them in the printout and the graph.")
    parser.add_argument("--strategy", default="topk", choices=list(SELECTION_STRATEGIES),
                        help="Layer-selection strategy.")
    parser.add_argument("--include-embeddings", action="store_true",
                        help="Let the selection pick the embedding output (index 0).")
    parser.add_argument("--output", default="analysis", help="Output directory.")
    parser.set_defaults(func=run)


def check_select(args, depth) -> None:
    """``--select`` fits the model's depth: checked before the weights are loaded and the forward passes run."""
    from ..layer_map import LayerSelection, candidate_count

    if args.select is None or depth is None:
        return
    available = candidate_count(LayerSelection(include_embeddings=args.include_embeddings), depth)
    if args.select > available:
        raise ValueError(f"--select {args.select}: the model has only {available} selectable layers "
                         f"({'0' if args.include_embeddings else '1'}..{depth})")


def print_profile(profile, args) -> None:
    selected = set(profile.metadata.get("selected_layers") or [])
    print(f"spectral intensity and spectral entropy (norm-free) of {args.model} over {profile.num_samples} "
          f"examples of {args.data}")
    entropy = profile.entropy.tolist() if profile.has_entropy else [float("nan")] * profile.num_layers
    for index, (value, h) in enumerate(zip(profile.intensity.tolist(), entropy, strict=True)):
        name = "embeddings" if index == 0 else f"block {index}"
        print(f"layer {index:3d} ({name:>10s}): intensity {value:.6f}  entropy {h:.4f}"
              f"{'  *' if index in selected else ''}")
    if selected:
        print(f"selected ({args.strategy}, k={args.select}): {sorted(selected)}")
    print(f"wrote {os.path.join(args.output, PROFILE_FILENAME)} and {os.path.join(args.output, PLOT_FILENAME)}")


def run(args) -> int:
    from ..analysis import analyze
    from ..tasks import get_task

    check_at_least_one(args, "max_samples", "batch_size", "max_length", "select")
    check_output_dir(args.output)
    task = get_task("text-classification")
    location = task.resolve_reference(args.model, "--model")
    rows = task.load_rows(args.data, args.split, args.max_samples, args.seed, in_order=not args.shuffle)
    task.check_rows(rows, args.text_column, args.text_pair_column, where=args.data)
    check_select(args, task.reference_depth(None, location))
    tokenizer = task.load_processor(None, location)
    _, model = task.load_model(location, "--model", quiet=True)
    profile = analyze(
        model, rows, tokenizer=tokenizer, text_column=args.text_column, text_pair_column=args.text_pair_column,
        max_samples=args.max_samples, batch_size=args.batch_size, max_length=args.max_length, select=args.select,
        strategy=args.strategy, include_embeddings=args.include_embeddings, output_dir=args.output, progress=True,
        shuffle=False,  # the rows are already the sample
        metadata={"model": args.model, "data": args.data, "split": args.split, "text_column": args.text_column,
                  "max_length": args.max_length, "shuffle": args.shuffle, "seed": args.seed},
    )
    print_profile(profile, args)
    return 0
