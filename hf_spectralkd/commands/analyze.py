"""``hf-spectralkd analyze``: spectral intensity of every layer of a model over a text dataset.

Writes ``spectral_profile.json`` and ``layer_intensity.png`` (the layer-intensity graph) to ``--output``
and prints one line per layer (``*`` marks the layers ``--select`` picks).
"""

from __future__ import annotations

import argparse
import os

from ..spectral import SELECTION_STRATEGIES
from . import check_at_least_one, check_output_dir

# local files: extension -> `datasets` packaged builder
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


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
                        help="Local model directory, Hub id, or 'packaged:minilm' (the MiniLM-L6 shipped with the project).")
    parser.add_argument("--data", required=True, default=argparse.SUPPRESS,
                        help="Local .jsonl/.json/.csv/.parquet file, or a Hub dataset id (needs Hub access).")
    parser.add_argument("--text-column", default="text", help="Column holding the text.")
    parser.add_argument("--text-pair-column", default=None, help="Optional second text column (sentence pairs).")
    parser.add_argument("--split", default="train", help="Dataset split to read.")
    parser.add_argument("--max-samples", type=int, default=512, help="Number of examples to analyse.")
    parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                        help="Analyse a seeded random sample of --max-samples examples (files sorted by label, such as "
                             "CLINC150, would otherwise give only the first few classes); --no-shuffle reads the first N.")
    parser.add_argument("--seed", type=int, default=42,
                        help="Seed of the random sample (42 = the Trainer's default seed: the same rows its layer selection reads).")
    parser.add_argument("--batch-size", type=int, default=32, help="Examples per forward pass.")
    parser.add_argument("--max-length", type=int, default=128, help="Truncate texts to this many tokens.")
    parser.add_argument("--select", type=int, default=None, metavar="K",
                        help="Also select K layers with --strategy and mark them in the printout and the graph.")
    parser.add_argument("--strategy", default="topk", choices=list(SELECTION_STRATEGIES), help="Layer-selection strategy.")
    parser.add_argument("--include-embeddings", action="store_true",
                        help="Let the selection pick the embedding output (index 0).")
    parser.add_argument("--output", default="analysis", help="Output directory.")
    parser.set_defaults(func=run)


def _load_rows(data: str, split: str, max_samples: int, shuffle: bool = False, seed: int = 0):
    """Rows of ``split`` from a local file or a Hub dataset, first ``max_samples`` only."""
    import datasets

    from ..loading import is_offline

    expanded = os.path.expanduser(data)
    extension = os.path.splitext(expanded)[1].lower()
    # Hub dataset ids are `name` or `org/name`; anything else is meant as a local file
    looks_local = extension in _BUILDERS or data.startswith((".", "/", "~")) or data.count("/") > 1
    if os.path.isdir(expanded):
        raise ValueError(f"--data: {data!r} is a directory; pass one .jsonl/.json/.csv/.parquet file")
    if looks_local or os.path.exists(expanded):
        if not os.path.isfile(expanded):
            raise ValueError(f"--data: the file {data!r} does not exist")
        if extension not in _BUILDERS:
            raise ValueError(f"--data: {data!r} has an unsupported extension; use one of {', '.join(sorted(_BUILDERS))}")
        # a single local file is one split, whatever --split says
        from ..data import read_data_file

        rows = read_data_file(expanded, "--data")
    else:
        if is_offline():
            raise ValueError(
                f"--data: {data!r} is not a local file and looks like a Hub dataset id, but the Hub is unreachable "
                "(HF_HUB_OFFLINE=1). Pass a local .jsonl/.json/.csv/.parquet file instead, e.g. "
                "--data hf_spectralkd/data/clinc150/train.jsonl"
            )
        try:
            rows = datasets.load_dataset(data, split=split)
        except ValueError as exc:
            raise ValueError(f"--data: could not load split {split!r} of {data!r}: {exc}") from exc
    if len(rows) == 0:
        raise ValueError(f"--data: {data!r} has no rows")
    if shuffle:  # the trainer's and the recipe pipeline's seeded sample (same rows for the same seed)
        from ..analysis import sample_indices

        return rows.select(sample_indices(len(rows), max_samples, seed))
    return rows.select(range(min(max_samples, len(rows))))


def run(args) -> int:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from ..analysis import PLOT_FILENAME, PROFILE_FILENAME, analyze
    from ..loading import resolve_model_reference

    check_at_least_one(args, "max_samples", "batch_size", "max_length", "select")
    check_output_dir(args.output)
    location = resolve_model_reference(args.model, what="--model")
    rows = _load_rows(args.data, args.split, args.max_samples, shuffle=args.shuffle, seed=args.seed)
    for option, column in (("--text-column", args.text_column), ("--text-pair-column", args.text_pair_column)):
        if column is not None and column not in rows.column_names:
            raise ValueError(f"{option} {column!r} not found in {args.data}: the columns are {rows.column_names}")

    try:
        config = AutoConfig.from_pretrained(location)
        num_layers = getattr(config, "num_hidden_layers", None)
        if args.select is not None and num_layers is not None:
            # fail before loading weights and running forward passes, not after them
            available = num_layers + (1 if args.include_embeddings else 0)
            if args.select > available:
                raise ValueError(
                    f"--select {args.select}: the model has only {available} selectable layers "
                    f"({'0' if args.include_embeddings else '1'}..{num_layers})"
                )
        tokenizer = AutoTokenizer.from_pretrained(location)
        # only the hidden states are analysed: a freshly initialised classification head (a base encoder such as
        # the packaged MiniLM) is expected, so the load report about it is not shown
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        try:
            model = AutoModelForSequenceClassification.from_pretrained(location)
        finally:
            transformers_logging.set_verbosity(verbosity)
    except OSError as exc:
        raise ValueError(f"--model: could not load {args.model!r} ({str(exc).splitlines()[0]})") from exc

    profile = analyze(
        model, rows, tokenizer=tokenizer, text_column=args.text_column, text_pair_column=args.text_pair_column,
        max_samples=args.max_samples, batch_size=args.batch_size, max_length=args.max_length, select=args.select,
        strategy=args.strategy, include_embeddings=args.include_embeddings, output_dir=args.output, progress=True,
        metadata={"model": args.model, "data": args.data, "split": args.split, "text_column": args.text_column,
                  "max_length": args.max_length, "shuffle": args.shuffle, "seed": args.seed},
    )
    selected = set(profile.metadata.get("selected_layers") or [])
    print(f"spectral intensity of {args.model} over {profile.num_samples} examples of {args.data}")
    for index, value in enumerate(profile.intensity.tolist()):
        name = "embeddings" if index == 0 else f"block {index}"
        print(f"layer {index:3d} ({name:>10s}): {value:.6f}{'  *' if index in selected else ''}")
    if selected:
        print(f"selected ({args.strategy}, k={args.select}): {sorted(selected)}")
    print(f"wrote {os.path.join(args.output, PROFILE_FILENAME)} and {os.path.join(args.output, PLOT_FILENAME)}")
    return 0
