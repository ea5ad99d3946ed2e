"""``hf-spectralkd compare``: the layer-intensity curves of two saved classifiers on the same data.

Both models are analysed on the same texts (each with its own tokenizer), the two curves are printed side
by side with their agreement (see :mod:`hf_spectralkd.dynamics`: Pearson correlation and mean relative
error, on the aligned layer pairs and on all layers resampled to a common depth grid), and
``compare.json`` + ``compare.png`` are written to ``--output``.
"""

from __future__ import annotations

import argparse
import os

from ..constants import LAYER_MAP_FILENAME
from ..utils import json_number, write_json
from . import check_at_least_one, check_output_dir, read_layer_map

COMPARE_JSON = "compare.json"
COMPARE_PLOT = "compare.png"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="Compare the layer-intensity curves of a teacher and a student (agreement numbers + plot).",
        description=(
            "Run two saved classifiers (transformers text models or timm vision models) over the same data, compute "
            "the spectral intensity of every layer (hidden_states index 0 = embeddings, l = block l) for each, print "
            "both curves side by side with "
            "their agreement (Pearson correlation and mean relative error on the aligned layer pairs and on all "
            "layers resampled to a common relative-depth grid), and write compare.json and compare.png."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--teacher", required=True,
                        help="Reference model: local directory, Hub id, or 'packaged:minilm'.")
    parser.add_argument("--student", required=True,
                        help="Model compared with the teacher: local directory, Hub id, or 'packaged:minilm'.")
    parser.add_argument("--data", required=True,
                        help="Text: a local .jsonl/.json/.csv/.parquet file, a directory of split files or a Hub "
                             "dataset id (needs Hub access). Images: 'sklearn:digits', an imagefolder directory or a "
                             "Hub dataset with an Image column.")
    parser.add_argument("--task", default="auto", choices=["auto", "text-classification", "image-classification"],
                        help="Model family: 'auto' picks image-classification when a model directory is in timm's "
                             "format (config.json with timm's 'architecture'), else text-classification.")
    parser.add_argument("--text-column", default="text", help="Column holding the text.")
    parser.add_argument("--text-pair-column", default=None, help="Optional second text column (sentence pairs).")
    parser.add_argument("--split", default="train", help="Dataset split to read (Hub datasets and image data).")
    parser.add_argument("--max-samples", type=int, default=256,
                        help="Number of examples to analyse, drawn at random with --seed (files are often sorted "
                             "by label).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the random draw of the examples.")
    parser.add_argument("--in-order", action="store_true",
                        help="Read the first --max-samples examples in file order instead.")
    parser.add_argument("--batch-size", type=int, default=32, help="Examples per forward pass.")
    parser.add_argument("--max-length", type=int, default=128, help="Truncate texts to this many tokens.")
    parser.add_argument(
        "--layer-map", default=None,
        help="layer_map.json (or a directory holding one) giving the aligned (student, teacher) pairs. Default: the "
             "student directory's layer_map.json when it has one (a SpectralKD student does); pass a SpectralKD "
             "student's layer map to score a no-KD student on the same pairs. Without pairs only the 'all' numbers "
             "exist.",
    )
    parser.add_argument("--output", default="compare", help="Output directory for compare.json and compare.png.")
    parser.set_defaults(func=run)


def layer_pairs(args, student_location) -> tuple:
    """``(pairs, source)``: the aligned (student, teacher) pairs of ``--layer-map``, else of the student directory's
    layer_map.json, else none."""
    if args.layer_map is not None:
        return read_layer_map("--layer-map", args.layer_map).pairs, args.layer_map
    own = os.path.join(student_location, LAYER_MAP_FILENAME)
    if os.path.isfile(own):
        return read_layer_map("--student", own).pairs, own
    return [], None


def detect_task(args, locations) -> str:
    """The task of the two models: both timm directories (image) or both not (text); a mix is an error."""
    from ..tasks.image import is_timm_directory

    timm_dirs = [is_timm_directory(loc) for loc in locations]
    if timm_dirs[0] != timm_dirs[1]:
        kinds = ["a timm model" if t else "a transformers model" for t in timm_dirs]
        raise ValueError(f"--teacher is {kinds[0]} but --student is {kinds[1]}: compare two models of the same family")
    detected = "image-classification" if timm_dirs[0] else "text-classification"
    if args.task != "auto" and args.task != detected and all(os.path.isdir(str(loc)) for loc in locations):
        raise ValueError(f"--task {args.task}: the two models are {'timm' if timm_dirs[0] else 'transformers'} models "
                         f"({detected}); use --task auto or {detected}")
    return detected if args.task == "auto" else args.task


def intensity_curve(task, option: str, location, rows, args) -> tuple:
    """``(intensity per layer, number of examples)`` of the model at ``location`` over ``rows``, which it reads
    with its own processor (tokenizer or normalisation)."""
    from ..analysis import collect_profile

    _, model = task.load_model(location, option)
    loader = task.analysis_loader(rows, task.model_processor(model, location), args.batch_size,
                                  text_column=args.text_column, text_pair_column=args.text_pair_column,
                                  max_length=args.max_length)
    profile = collect_profile(model, loader)
    return [float(v) for v in profile.intensity], profile.num_samples


def short_name(reference: str) -> str:
    """The last two path components (``run/student``) for plot labels."""
    parts = os.path.normpath(reference).split(os.sep)
    return "/".join(parts[-2:])


def print_curves(args, teacher, student, pairs, agreement, num_samples) -> None:
    from ..dynamics import AGREEMENT_KEYS, MIN_PEARSON_POINTS

    aligned_with = dict(pairs)
    drawn = "the first" if args.in_order else f"random (seed {args.seed})"
    print(f"spectral intensity over {drawn} {num_samples} examples of {args.data} (index 0 = embeddings)")
    print(f"  teacher: {args.teacher} ({len(teacher) - 1} blocks)   "
          f"student: {args.student} ({len(student) - 1} blocks)")
    print(f"{'layer':>5}  {'teacher':>10}  {'student':>10}  aligned")
    for index in range(max(len(teacher), len(student))):
        t = f"{teacher[index]:.6f}" if index < len(teacher) else ""
        s = f"{student[index]:.6f}" if index < len(student) else ""
        note = f"student {index} <-> teacher {aligned_with[index]}" if index in aligned_with else ""
        print(f"{index:>5}  {t:>10}  {s:>10}  {note}")
    for key in AGREEMENT_KEYS:
        shown = "n/a (no aligned pairs)" if key.endswith("aligned") and not pairs else f"{agreement[key]:.4f}"
        if key == "pearson_aligned" and 0 < len(pairs) < MIN_PEARSON_POINTS:  # +-1 by construction, or 1 d.o.f.
            shown = f"n/a ({len(pairs)} aligned pairs; needs at least {MIN_PEARSON_POINTS})"
        print(f"{key:>16}: {shown}")


def run(args) -> int:
    from ..dynamics import curve_agreement, plot_intensity_curves
    from ..loading import resolve_model_reference
    from ..tasks import get_task

    check_at_least_one(args, "max_samples", "batch_size", "max_length")
    check_output_dir(args.output)  # every input is checked before the (slow) forward passes
    locations = {role: resolve_model_reference(getattr(args, role), what=f"--{role}")
                 for role in ("teacher", "student")}
    pairs, layer_map_source = layer_pairs(args, locations["student"])
    task_name = detect_task(args, (locations["teacher"], locations["student"]))
    task = get_task(task_name)
    rows = task.load_rows(args.data, args.split, args.max_samples, args.seed, in_order=args.in_order)
    text = task_name == "text-classification"
    if text:
        task.check_rows(rows, args.text_column, args.text_pair_column, where=args.data)
    curves = {role: intensity_curve(task, f"--{role}", loc, rows, args) for role, loc in locations.items()}
    (teacher, num_samples), (student, _) = curves["teacher"], curves["student"]
    try:
        agreement = curve_agreement(teacher, student, pairs)
    except ValueError as exc:
        raise ValueError(f"--layer-map {layer_map_source}: {exc}") from exc
    print_curves(args, teacher, student, pairs, agreement, num_samples)

    os.makedirs(args.output, exist_ok=True)
    plot_path = plot_intensity_curves(
        os.path.join(args.output, COMPARE_PLOT), teacher,
        [(f"student: {short_name(args.student)} ({len(student) - 1} blocks)", student)], pairs=pairs,
        title=f"Layer intensity on {num_samples} examples", teacher_label=f"teacher: {short_name(args.teacher)}",
    )
    report = {
        "format": "hf_spectralkd.Compare/1",
        **{role: {"reference": getattr(args, role), "path": locations[role], "num_layers": len(curve) - 1,
                  "intensity": curve} for role, curve in (("teacher", teacher), ("student", student))},
        "pairs": [list(p) for p in pairs],
        "layer_map_source": layer_map_source,
        "agreement": {key: json_number(value) for key, value in agreement.items()},
        "data": args.data, "task": task_name,
        "sample": "file order" if args.in_order else f"random (seed {args.seed})",
        "text_column": args.text_column if text else None, "num_samples": num_samples,
        "max_length": args.max_length if text else None,
    }
    json_path = write_json(os.path.join(args.output, COMPARE_JSON), report, indent=1)
    print(f"wrote {json_path} and {plot_path}")
    return 0
