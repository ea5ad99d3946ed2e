"""``hf-spectralkd cache-teacher``: precompute a teacher's logits and aligned hidden states for training.

The cache (float16, real tokens only, memory-mapped ``.npy`` files) is keyed by example id (row index of
the split) and fingerprinted by teacher weights, tokenized data and layers; a second run with the same
inputs reuses it. Train with the same tokenization and ``hf_spectralkd.teacher_cache.enable_teacher_cache``.
"""

from __future__ import annotations

import argparse
import json
import os

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache-teacher",
        help="Precompute the teacher's logits and aligned hidden states (float16, memory-mapped).",
        description=(
            "Run the frozen teacher once over a tokenized text split and store its logits and the hidden states of the "
            "aligned layers (real tokens only, float16, memory-mapped). Later epochs read the cache instead of running "
            "the teacher. The cache is rebuilt when the teacher weights, the data or the layers change."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--teacher", required=True, default=argparse.SUPPRESS,
                        help="Fine-tuned teacher: local directory (with its tokenizer) or 'packaged:minilm'.")
    parser.add_argument("--data", required=True, default=argparse.SUPPRESS,
                        help="Local .jsonl/.json/.csv/.parquet file, or a directory holding <split>.jsonl.")
    parser.add_argument("--split", default="train", help="Split file to read when --data is a directory.")
    parser.add_argument("--text-column", default="text", help="Column holding the text.")
    parser.add_argument("--text-pair-column", default=None, help="Optional second text column (sentence pairs).")
    parser.add_argument("--max-length", type=int, default=128, help="Truncate texts to this many tokens (as in training).")
    layers = parser.add_mutually_exclusive_group(required=True)
    layers.add_argument("--layers", type=int, nargs="+", default=None,
                        help="Teacher hidden_states indices to store (0 = embeddings, l = block l).")
    layers.add_argument("--layer-map", default=None, help="A layer_map.json (or a directory holding one) to take them from.")
    parser.add_argument("--output", required=True, default=argparse.SUPPRESS, help="Cache directory.")
    parser.add_argument("--batch-size", type=int, default=64, help="Examples per teacher forward pass.")
    parser.add_argument("--id-column", default="example_id", help="Name of the example-id column (the row index).")
    parser.set_defaults(func=run)


def _data_file(data: str, split: str) -> str:
    path = os.path.expanduser(data)
    if os.path.isdir(path):
        candidate = os.path.join(path, f"{split}.jsonl")
        if not os.path.isfile(candidate):
            raise ValueError(f"--data {data}: directory has no {split}.jsonl (set --split or point at a file)")
        return candidate
    if not os.path.isfile(path):
        raise ValueError(f"--data {data}: no such file or directory")
    if os.path.splitext(path)[1].lower() not in _BUILDERS:
        raise ValueError(f"--data {data}: unsupported file type; use one of {', '.join(sorted(_BUILDERS))}")
    return path


def _layers(args) -> list:
    if args.layers is not None:
        layers = list(args.layers)
    else:
        path = args.layer_map
        if os.path.isdir(path):
            path = os.path.join(path, "layer_map.json")
        if not os.path.isfile(path):
            raise ValueError(f"--layer-map {args.layer_map}: no layer_map.json there")
        with open(path, encoding="utf-8") as handle:
            layers = list(json.load(handle).get("teacher_layers") or [])
        if not layers:
            raise ValueError(f"--layer-map {args.layer_map}: it aligns no teacher layers (beta = 0?); nothing to cache")
    if any(i < 0 for i in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"--layers must be distinct non-negative hidden_states indices, got {layers}")
    return layers


def tokenize_split(tokenizer, dataset, text_column: str, text_pair_column=None, max_length: int = 128,
                   id_column: str = "example_id"):
    """Tokenize like the recipes do (truncation, no padding) and add the example-id column."""
    from ..teacher_cache import add_example_ids

    for column in (text_column, text_pair_column):
        if column and column not in dataset.column_names:
            raise ValueError(f"column {column!r} not in the data (columns: {', '.join(dataset.column_names)})")

    def encode(batch):
        pair = batch[text_pair_column] if text_pair_column else None
        return tokenizer(batch[text_column], pair, truncation=True, max_length=max_length)

    dataset = add_example_ids(dataset, id_column)
    keep = {id_column}
    return dataset.map(encode, batched=True, remove_columns=[c for c in dataset.column_names if c not in keep])


def run(args) -> int:
    import time

    from transformers import AutoTokenizer, DataCollatorWithPadding

    from ..adapters import get_adapter
    from ..data import read_data_file
    from ..loading import load_classifier, resolve_model_reference
    from ..teacher_cache import META_FILENAME, TeacherCache, build_teacher_cache, cache_fingerprint

    # every check before any work
    data_file = _data_file(args.data, args.split)
    layers = _layers(args)
    if args.batch_size < 1 or args.max_length < 1:
        raise ValueError("--batch-size and --max-length must be >= 1")
    location = resolve_model_reference(args.teacher, "--teacher")
    teacher = load_classifier(location, what="--teacher").eval()
    n_layers = get_adapter(teacher).num_layers(teacher)
    bad = [i for i in layers if i > n_layers]
    if bad:
        raise ValueError(f"--layers {bad} out of range: the teacher has {n_layers} blocks, valid indices are 0..{n_layers}")
    tokenizer = AutoTokenizer.from_pretrained(location)

    raw = read_data_file(data_file, "--data")
    dataset = tokenize_split(tokenizer, raw, args.text_column, args.text_pair_column, args.max_length, args.id_column)
    fingerprint = cache_fingerprint(teacher, dataset, layers, args.id_column)
    output = os.path.expanduser(args.output)
    if os.path.isfile(os.path.join(output, META_FILENAME)) and TeacherCache(output).fingerprint == fingerprint:
        cache, seconds, state = TeacherCache(output), 0.0, "up to date"
    else:
        start = time.time()
        cache = build_teacher_cache(teacher, dataset, DataCollatorWithPadding(tokenizer), layers, output, args.id_column,
                                    batch_size=args.batch_size, fingerprint=fingerprint, progress=True)
        seconds, state = time.time() - start, "built"
    size = cache.disk_bytes()
    print(f"teacher cache {state}: {len(cache)} examples, {cache.meta['num_tokens']} real tokens, layers {layers} -> {output}")
    print(f"  disk {size / 2**20:.1f} MiB ({size / 2**20 / len(cache) * 1000:.1f} MiB per 1,000 examples), {seconds:.1f} s")
    return 0
