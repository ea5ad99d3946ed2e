"""``hf-spectralkd cache-teacher``: precompute a teacher's logits and aligned hidden states for training
(``--logits-only``: the logits alone, for logit KD).

The cache (float16, real tokens only, memory-mapped ``.npy`` files) is keyed by example id (row index of
the split) and fingerprinted by teacher weights, tokenized data and layers; a second run with the same
inputs reuses it. Train with the same tokenization and ``hf_spectralkd.teacher_cache.enable_teacher_cache``.
"""

from __future__ import annotations

import argparse
import os

from . import check_at_least_one, read_layer_map


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache-teacher",
        help="Precompute the teacher's logits and aligned hidden states (float16, memory-mapped).",
        description=(
            "Run the frozen teacher once over a tokenized text split and store its logits and the hidden states of "
            "the aligned layers (real tokens only, float16, memory-mapped; --logits-only: the logits alone, for "
            "logit KD). Later epochs read the cache instead of running the teacher. The cache is rebuilt when the "
            "teacher weights, the data or the layers change."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--teacher", required=True, default=argparse.SUPPRESS,
                        help="Fine-tuned teacher: local directory (with its tokenizer) or 'packaged:minilm'.")
    parser.add_argument("--data", required=True, default=argparse.SUPPRESS,
                        help="Local .jsonl/.json/.csv/.parquet file, a directory holding "
                             "<split>.jsonl/.csv/.parquet, or a Hub dataset id (needs Hub access).")
    parser.add_argument("--split", default="train", help="Split to read when --data is a directory or a Hub id.")
    parser.add_argument("--text-column", default="text", help="Column holding the text.")
    parser.add_argument("--text-pair-column", default=None, help="Optional second text column (sentence pairs).")
    parser.add_argument("--max-length", type=int, default=128,
                        help="Truncate texts to this many tokens (as in training).")
    layers = parser.add_mutually_exclusive_group(required=True)
    layers.add_argument("--layers", type=int, nargs="+", default=None,
                        help="Teacher hidden_states indices to store (0 = embeddings, l = block l).")
    layers.add_argument("--layer-map", default=None,
                        help="A layer_map.json (or a directory holding one) to take them from (one that aligns no "
                             "layers, beta = 0, caches the logits only).")
    layers.add_argument("--logits-only", action="store_true",
                        help="Store the teacher's logits only (logit KD, distillation beta = 0).")
    parser.add_argument("--output", required=True, default=argparse.SUPPRESS, help="Cache directory.")
    parser.add_argument("--batch-size", type=int, default=64, help="Examples per teacher forward pass.")
    parser.add_argument("--id-column", default="example_id", help="Name of the example-id column (the row index).")
    parser.set_defaults(func=run)


def teacher_layers(args) -> list:
    """The teacher layers to store: ``--layers``, the teacher layers of ``--layer-map`` (none when it aligns no
    layers), or none with ``--logits-only`` (a cache of the logits only, for logit KD)."""
    if getattr(args, "logits_only", False):
        return []
    if args.layers is not None:
        layers = list(args.layers)
    else:
        layers = list(read_layer_map("--layer-map", args.layer_map).teacher_layers)
    if any(i < 0 for i in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"--layers must be distinct non-negative hidden_states indices, got {layers}")
    return layers


def tokenize_split(tokenizer, dataset, text_column: str, text_pair_column=None, max_length: int = 128,
                   id_column: str = "example_id"):
    """The text task's tokenisation (truncation, no padding: as the recipes train) plus the example-id column."""
    from ..tasks import get_task
    from ..teacher_cache import add_example_ids

    return get_task("text-classification").tokenize(add_example_ids(dataset, id_column), tokenizer, text_column,
                                                    text_pair_column, max_length, keep=(id_column,))


def run(args) -> int:
    import time

    from ..adapters import get_adapter
    from ..constants import CACHE_META_FILENAME
    from ..tasks import get_task
    from ..teacher_cache import TeacherCache, build_teacher_cache, cache_fingerprint

    check_at_least_one(args, "batch_size", "max_length")
    task = get_task("text-classification")
    rows = task.load_rows(args.data, args.split)  # every row: the example id is the row index
    layers = teacher_layers(args)
    location, teacher = task.load_model(args.teacher, "--teacher")
    n_layers = get_adapter(teacher).num_layers(teacher.eval())
    bad = [i for i in layers if i > n_layers]
    if bad:
        raise ValueError(f"--layers {bad} out of range: the teacher has {n_layers} blocks, valid indices are "
                         f"0..{n_layers}")
    tokenizer = task.load_processor(None, location)
    dataset = tokenize_split(tokenizer, rows, args.text_column, args.text_pair_column, args.max_length, args.id_column)
    fingerprint = cache_fingerprint(teacher, dataset, layers, args.id_column)
    output = os.path.expanduser(args.output)
    if os.path.isfile(os.path.join(output, CACHE_META_FILENAME)) and TeacherCache(output).fingerprint == fingerprint:
        cache, seconds, state = TeacherCache(output), 0.0, "up to date"
    else:
        start = time.time()
        cache = build_teacher_cache(teacher, dataset, task.data_collator(tokenizer), layers, output, args.id_column,
                                    batch_size=args.batch_size, fingerprint=fingerprint, progress=True)
        seconds, state = time.time() - start, "built"
    size = cache.disk_bytes()
    mib = size / 2**20
    stored = f"layers {layers}" if layers else "logits only"
    print(f"teacher cache {state}: {len(cache)} examples, {cache.meta['num_tokens']} real tokens, {stored} "
          f"-> {output}")
    print(f"  disk {mib:.1f} MiB ({mib / len(cache) * 1000:.1f} MiB per 1,000 examples), {seconds:.1f} s")
    return 0
