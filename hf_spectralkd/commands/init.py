"""``hf-spectralkd init``: write a commented starter recipe for the user's own CSV / JSONL file.

The columns are read from the file (up to ``MAX_ROWS`` rows) and detected:

* a pair of list columns of equal length per row (``tokens`` / ``tags`` when so named; otherwise the list column
  with more distinct items is the words, the other the tags) -> ``task: token-classification``;
* otherwise ``task: text-classification``: the text is the string column with many distinct values (the longest
  on average), the label the column with the fewest distinct values (at least 2, at most half the rows).

``--text-column`` / ``--label-column`` (``--tokens-column`` / ``--tags-column``) override the detection.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os

MAX_ROWS = 20_000  # rows read to detect the columns
HELP = "Write a commented starter recipe for your own CSV / JSONL file (columns detected)."
TEXT_NAMES = ("text", "sentence", "utterance", "query", "content", "review", "question")
LABEL_NAMES = ("label", "labels", "intent", "category", "class", "target")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "init", help=HELP,
        description=HELP + " The recipe fine-tunes the packaged MiniLM-L6 as the teacher on the file and distils a "
        "3-block student; edit it, then run it with `hf-spectralkd distill --config RECIPE`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", required=True, default=argparse.SUPPRESS,
                        help="a .csv / .tsv / .jsonl / .json file with one example per row")
    parser.add_argument("--output", default="recipe.yaml", help="the recipe file to write")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    parser.add_argument("--name", default=None, help="recipe name (default: the data file's name)")
    parser.add_argument("--text-column", default=None, help="the text column (default: detected)")
    parser.add_argument("--label-column", default=None, help="the label column (default: detected)")
    parser.add_argument("--tokens-column", default=None, help="token classification: the word-list column")
    parser.add_argument("--tags-column", default=None, help="token classification: the tag-list column")
    parser.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- reading
def read_rows(path: str, limit: int = MAX_ROWS) -> list:
    """Up to ``limit`` rows (dicts) of a CSV / TSV / JSON Lines / JSON file; CSV cells holding a JSON list are
    parsed (a token-classification file)."""
    if not os.path.isfile(path):
        raise ValueError(f"--data {path!r} is not a file")
    extension = os.path.splitext(path)[1].lower()
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        if extension in (".csv", ".tsv"):
            reader = csv.DictReader(handle, delimiter="\t" if extension == ".tsv" else ",")
            for row in reader:
                rows.append({k: _cell(v) for k, v in row.items() if k is not None})
                if len(rows) >= limit:
                    break
        elif extension in (".jsonl", ".json"):
            text = handle.read()
            stripped = text.lstrip()
            if extension == ".json" and stripped.startswith("["):
                rows = json.loads(text)[:limit]
            else:
                for number, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise ValueError(f"--data {path}: line {number} is not JSON: {exc}") from None
                    if len(rows) >= limit:
                        break
        else:
            raise ValueError(f"--data {path!r}: expected a .csv, .tsv, .jsonl or .json file")
    rows = [row for row in rows if isinstance(row, dict)]
    if not rows:
        raise ValueError(f"--data {path!r} has no rows")
    return rows


def _cell(value):
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


# ---------------------------------------------------------------------------------------------- detection
def _columns(rows: list) -> list:
    names = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    return names


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def column_facts(rows: list) -> dict:
    """Per column: its kind (``str`` / ``list`` / ``number`` / ``other``), distinct values and mean text length."""
    facts = {}
    for name in _columns(rows):
        values = [row.get(name) for row in rows if row.get(name) not in (None, "")]
        kinds = {"list" if isinstance(v, list) else "number" if isinstance(v, (int, float)) and not isinstance(v, bool)
                 else "str" if isinstance(v, str) else "other" for v in values}
        kind = kinds.pop() if len(kinds) == 1 else "other"
        if kind == "str" and all(_is_number(v) for v in values):
            kind = "number"
        facts[name] = {
            "kind": kind,
            "count": len(values),
            "distinct": len({_hashable(v) for v in values}),
            "mean_length": sum(len(v) for v in values) / len(values) if values and kind == "str" else 0.0,
            "items": len({x for v in values for x in v}) if kind == "list" and all(
                all(isinstance(x, str) for x in v) for v in values) else 0,
        }
    return facts


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def detect(rows: list, args) -> dict:
    """``{"task", ...columns}`` for the rows (see the module docstring); errors list the columns."""
    facts = column_facts(rows)
    described = ", ".join(f"{n} ({f['kind']}, {f['distinct']} distinct)" for n, f in facts.items())
    for option in ("text_column", "label_column", "tokens_column", "tags_column"):
        given = getattr(args, option, None)
        if given is not None and given not in facts:
            raise ValueError(f"--{option.replace('_', '-')} {given!r} is not a column of {args.data}: {described}")
    lists = [n for n, f in facts.items() if f["kind"] == "list"]
    if args.tokens_column or args.tags_column or (len(lists) >= 2 and not (args.text_column or args.label_column)):
        return _detect_tokens(rows, facts, lists, args, described)
    rows_count = len(rows)
    text = args.text_column
    if text is None:
        candidates = [n for n, f in facts.items() if f["kind"] == "str" and f["distinct"] > 0.5 * f["count"]]
        named = [n for n in candidates if n.lower() in TEXT_NAMES]
        ranked = named or sorted(candidates, key=lambda n: facts[n]["mean_length"], reverse=True)
        if not ranked:
            raise ValueError(f"no text column found in {args.data} (a string column with many distinct values): "
                             f"{described}; name it with --text-column")
        text = ranked[0]
    label = args.label_column
    if label is None:
        candidates = [n for n, f in facts.items() if n != text and f["kind"] in ("str", "number")
                      and 2 <= f["distinct"] <= max(2, rows_count // 2)]
        named = [n for n in candidates if n.lower() in LABEL_NAMES]
        ranked = named or sorted(candidates, key=lambda n: facts[n]["distinct"])
        if not ranked:
            raise ValueError(f"no label column found in {args.data} (a column with few distinct values, at least 2): "
                             f"{described}; name it with --label-column")
        label = ranked[0]
    labels = {_hashable(row.get(label)) for row in rows if row.get(label) not in (None, "")}
    lengths = sorted(len(str(row.get(text, "")).split()) for row in rows)
    return {"task": "text-classification", "text_column": text, "label_column": label,
            "num_labels": len(labels), "words_p99": lengths[min(len(lengths) - 1, int(0.99 * len(lengths)))]}


def _detect_tokens(rows, facts, lists, args, described) -> dict:
    tokens, tags = args.tokens_column, args.tags_column
    if tokens is None or tags is None:
        if "tokens" in lists and "tags" in lists:
            tokens, tags = tokens or "tokens", tags or "tags"
        else:
            others = [n for n in lists if n not in (tokens, tags)]
            ranked = sorted(others, key=lambda n: facts[n]["items"], reverse=True)
            if tokens is None:
                tokens, ranked = (ranked[0], ranked[1:]) if ranked else (None, ranked)
            if tags is None:
                tags = ranked[-1] if ranked else None
    if tokens is None or tags is None or tokens == tags:
        raise ValueError(f"token classification needs a word-list and a tag-list column in {args.data}: "
                         f"{described}; name them with --tokens-column / --tags-column")
    for number, row in enumerate(rows, 1):
        words, labels = row.get(tokens), row.get(tags)
        if not isinstance(words, list) or not isinstance(labels, list) or len(words) != len(labels):
            raise ValueError(f"{args.data}: row {number}: columns {tokens!r} and {tags!r} must be lists of the same "
                             "length (one tag per word)")
    tag_set = {t for row in rows for t in row[tags]}
    lengths = sorted(len(row[tokens]) for row in rows)
    return {"task": "token-classification", "tokens_column": tokens, "tags_column": tags,
            "num_labels": len(tag_set), "words_p99": lengths[min(len(lengths) - 1, int(0.99 * len(lengths)))]}


# ---------------------------------------------------------------------------------------------- writing
def max_length_for(words: int) -> int:
    """Sub-word tokens for ``words`` words (about 1.5 each, plus [CLS]/[SEP]), rounded up to 16, in [32, 256]."""
    return int(min(256, max(32, 16 * math.ceil((1.5 * words + 2) / 16))))


def recipe_text(detected: dict, data_source: str, name: str, rows: int) -> str:
    task = detected["task"]
    if task == "token-classification":
        columns = (f"  tokens_column: {detected['tokens_column']}    # the word-list column\n"
                   f"  tags_column: {detected['tags_column']}    # one tag per word "
                   f"({detected['num_labels']} tags seen)\n"
                   "  label_all_tokens: false        # only each word's first sub-word is labelled\n")
        head, kind = "the token classifier", "token-classification head"
    else:
        columns = (f"  text_column: {detected['text_column']}\n"
                   f"  label_column: {detected['label_column']}    # {detected['num_labels']} labels seen\n")
        head, kind = "pooler/classifier", "classification head"
    max_length, words = max_length_for(detected["words_p99"]), detected["words_p99"]
    return f"""\
# Starter recipe written by `hf-spectralkd init` for {os.path.basename(data_source)} ({rows} rows read, task
# detected: {task}). Check the detected columns below, then:
#   hf-spectralkd distill --config <this file> --dry-run    (checks everything, runs nothing)
#   hf-spectralkd distill --config <this file> --smoke      (every stage in about a minute)
#   hf-spectralkd distill --config <this file>
# The packaged MiniLM-L6 (BERT, 6 layers, hidden 384; offline) gets a fresh {kind}
# and is fine-tuned on your data as the teacher; a 3-layer student is built by copying teacher blocks and
# distilled with SpectralKD; the teacher, the no-KD baseline student and the SpectralKD student are evaluated.
# Relative paths resolve against this file's directory; output.dir against the current directory. Every key:
# docs/recipes.md.
name: {name}
task: {task}

teacher:
  base: packaged:minilm          # or a Hub id / a local model directory
  finetune:
    epochs: 3
    learning_rate: 1e-4
    batch_size: 32
    warmup_steps: 0.06           # < 1: a fraction of the steps
    seed: 42

student:
  init: teacher_layers           # copy embeddings + these blocks + {head} from the teacher
  num_layers: 3
  init_layers: uniform           # which teacher blocks are COPIED: [2, 4, 6]

data:
  source: {data_source}
{columns}  max_length: {max_length}    # sub-word tokens; 99 % of the rows have <= {words} words
  validation_fraction: 0.1       # one file: a seeded (stratified when possible) validation split is carved from it
  seed: 42
  # test_file: test.csv          # a held-out test file: then set evaluation.split to test
  # license: ...                 # shown in results.json and the model card
  # citation: ...

distillation:                    # which teacher layers are ALIGNED (spectral selection) and the loss weights
  alpha: 0.9                     # weight of the logit KD term (1 - alpha: cross-entropy on the labels)
  temperature: 1.0
  beta: 0.2                      # weight of the frequency-alignment term
  layer_selection: topk          # align the teacher layers of highest spectral intensity
  selection_samples: 512
  fft_axis: tokens
  freq_loss_variant: complex

training:                        # any TrainingArguments field; the no-KD baseline uses the same budget
  learning_rate: 1e-4
  num_train_epochs: 2
  per_device_train_batch_size: 32
  per_device_eval_batch_size: 128
  warmup_steps: 0.06
  logging_steps: 50
  eval_strategy: epoch
  seed: 42

evaluation:
  split: validation              # one file has no test split; with data.test_file set, use test
  baseline: true                 # also train the student without distillation, for comparison

output:
  dir: runs/{name}

hub:
  push_to_hub: false
"""


def run(args) -> int:
    output = os.path.expanduser(args.output)
    if os.path.isdir(output):
        raise ValueError(f"--output {args.output!r} is a directory: pass a file name, e.g. "
                         f"{os.path.join(args.output, 'recipe.yaml')!r}")
    if os.path.exists(output) and not args.force:
        raise ValueError(f"--output {args.output!r} exists: pass --force to overwrite it, or another --output")
    data = os.path.abspath(os.path.expanduser(args.data))
    rows = read_rows(data)
    detected = detect(rows, args)
    directory = os.path.dirname(os.path.abspath(output))
    source = os.path.relpath(data, directory)
    stem = os.path.splitext(os.path.basename(data))[0]
    name = args.name or "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "my_data"
    os.makedirs(directory, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(recipe_text(detected, source, name, len(rows)))
    if detected["task"] == "token-classification":
        what = f"words {detected['tokens_column']!r}, tags {detected['tags_column']!r}"
    else:
        what = f"text {detected['text_column']!r}, label {detected['label_column']!r}"
    print(f"wrote {args.output}: {detected['task']}, {what}, {detected['num_labels']} labels ({len(rows)} rows read)")
    print(f"check it, then run:  hf-spectralkd distill --config {args.output} --smoke")
    print(f"            and:     hf-spectralkd distill --config {args.output}")
    return 0
