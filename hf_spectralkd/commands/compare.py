"""``hf-spectralkd compare``: the layer-intensity curves of two saved classifiers on the same data.

Both models are analysed on the same texts (each with its own tokenizer), the two curves are printed side
by side with their agreement (see :mod:`hf_spectralkd.dynamics`: Pearson correlation and mean relative
error, on the aligned layer pairs and on all layers resampled to a common depth grid), and
``compare.json`` + ``compare.png`` are written to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os

from . import check_at_least_one, check_output_dir

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
                        help="Text: a local .jsonl/.json/.csv/.parquet file or a Hub dataset id (needs Hub access). Images: "
                             "'sklearn:digits', an imagefolder directory or a Hub dataset with an Image column.")
    parser.add_argument("--task", default="auto", choices=["auto", "text-classification", "image-classification"],
                        help="Model family: 'auto' picks image-classification when a model directory is in timm's format "
                             "(config.json with timm's 'architecture'), else text-classification.")
    parser.add_argument("--text-column", default="text", help="Column holding the text.")
    parser.add_argument("--text-pair-column", default=None, help="Optional second text column (sentence pairs).")
    parser.add_argument("--split", default="train", help="Dataset split to read (Hub datasets and image data).")
    parser.add_argument("--max-samples", type=int, default=256,
                        help="Number of examples to analyse, drawn at random with --seed (files are often sorted by label).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the random draw of the examples.")
    parser.add_argument("--in-order", action="store_true", help="Read the first --max-samples examples in file order instead.")
    parser.add_argument("--batch-size", type=int, default=32, help="Examples per forward pass.")
    parser.add_argument("--max-length", type=int, default=128, help="Truncate texts to this many tokens.")
    parser.add_argument(
        "--layer-map", default=None,
        help="layer_map.json (or a directory holding one) giving the aligned (student, teacher) pairs. Default: the "
             "student directory's layer_map.json when it has one (a SpectralKD student does); pass a SpectralKD "
             "student's layer map to score a no-KD student on the same pairs. Without pairs only the 'all' numbers exist.",
    )
    parser.add_argument("--output", default="compare", help="Output directory for compare.json and compare.png.")
    parser.set_defaults(func=run)


def _read_pairs(option: str, path: str) -> list:
    from ..distillation_trainer import LAYER_MAP_FILENAME

    file = os.path.join(path, LAYER_MAP_FILENAME) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"{option}: {path!r} is neither a layer_map.json file nor a directory holding one")
    try:
        with open(file, encoding="utf-8") as handle:
            data = json.load(handle)
        pairs = [(int(s), int(t)) for s, t in zip(data["student_layers"], data["teacher_layers"], strict=True)]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{option}: {file} is not a layer map with student_layers/teacher_layers lists of equal length ({exc})") from exc
    return pairs


def _load(option: str, reference: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..loading import resolve_model_reference

    location = resolve_model_reference(reference, what=option)
    try:
        return location, AutoTokenizer.from_pretrained(location), AutoModelForSequenceClassification.from_pretrained(location)
    except OSError as exc:
        raise ValueError(f"{option}: could not load {reference!r} ({str(exc).splitlines()[0]})") from exc


def _detect_task(args, locations) -> str:
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


def _image_rows(args):
    """The compared images: a seeded random sample (or the first ones) of ``--split``, raw (each model applies its
    own timm transform)."""
    from ..analysis import sample_indices
    from ..recipes import DataSection
    from ..tasks.image import load_image_data

    splits, _, _ = load_image_data(DataSection(source=args.data), need_test=False)
    if args.split not in splits:
        raise ValueError(f"--split {args.split!r} not in {args.data} (found {', '.join(splits)})")
    rows = splits[args.split]
    picked = range(min(args.max_samples, len(rows))) if args.in_order else sample_indices(len(rows), args.max_samples, args.seed)
    return rows.select(picked)


def _image_curve(option: str, location, rows, batch_size: int):
    from torch.utils.data import DataLoader

    from ..analysis import collect_profile
    from ..tasks import get_task
    from ..tasks.image import ImageProcessor, image_collator, transform_splits

    try:
        model = get_task("image-classification").load_classifier(None, location, what=option).eval()
    except (KeyError, RuntimeError, OSError) as exc:
        raise ValueError(f"{option}: could not load {location!r} as a timm model ({exc})") from exc
    prepared = transform_splits({"data": rows}, ImageProcessor.from_model(model))["data"]
    loader = DataLoader(prepared, batch_size=batch_size, collate_fn=lambda b: {"pixel_values": image_collator(b)["pixel_values"]})
    profile = collect_profile(model, loader)
    return [float(v) for v in profile.intensity], profile.num_samples


def _short(reference: str) -> str:
    """The last two path components (``run/student``) for plot labels."""
    parts = os.path.normpath(reference).split(os.sep)
    return "/".join(parts[-2:])


def run(args) -> int:
    from ..analysis import analyze
    from ..dynamics import AGREEMENT_KEYS, _json_number, curve_agreement, plot_intensity_curves
    from ..loading import resolve_model_reference
    from .analyze import _load_rows

    check_at_least_one(args, "max_samples", "batch_size", "max_length")
    # check every input before the (slow) forward passes
    check_output_dir(args.output)
    teacher_location = resolve_model_reference(args.teacher, what="--teacher")
    student_location = resolve_model_reference(args.student, what="--student")
    layer_map_source = args.layer_map
    pairs = []
    if layer_map_source is not None:
        pairs = _read_pairs("--layer-map", layer_map_source)
    elif os.path.isfile(os.path.join(student_location, "layer_map.json")):
        layer_map_source = os.path.join(student_location, "layer_map.json")
        pairs = _read_pairs("--student", layer_map_source)
    task = _detect_task(args, (teacher_location, student_location))
    curves = {}
    if task == "image-classification":
        rows = _image_rows(args)
        for role, option, location in (("teacher", "--teacher", teacher_location), ("student", "--student", student_location)):
            curves[role], num_samples = _image_curve(option, location, rows, args.batch_size)
    else:
        rows = _load_rows(args.data, args.split, args.max_samples, shuffle=not args.in_order, seed=args.seed)
        for option, column in (("--text-column", args.text_column), ("--text-pair-column", args.text_pair_column)):
            if column is not None and column not in rows.column_names:
                raise ValueError(f"{option} {column!r} not found in {args.data}: the columns are {rows.column_names}")
        for role, option, reference in (("teacher", "--teacher", args.teacher), ("student", "--student", args.student)):
            _, tokenizer, model = _load(option, reference)
            profile = analyze(model, rows, tokenizer=tokenizer, text_column=args.text_column,
                              text_pair_column=args.text_pair_column, max_samples=args.max_samples,
                              batch_size=args.batch_size, max_length=args.max_length, progress=False)
            curves[role] = [float(v) for v in profile.intensity]
            num_samples = profile.num_samples
            del model
    teacher, student = curves["teacher"], curves["student"]
    try:
        agreement = curve_agreement(teacher, student, pairs)
    except ValueError as exc:
        raise ValueError(f"--layer-map {layer_map_source}: {exc}") from exc

    aligned_with = {s: t for s, t in pairs}
    drawn = "the first" if args.in_order else f"random (seed {args.seed})"
    print(f"spectral intensity over {drawn} {num_samples} examples of {args.data} (index 0 = embeddings)")
    print(f"  teacher: {args.teacher} ({len(teacher) - 1} blocks)   student: {args.student} ({len(student) - 1} blocks)")
    print(f"{'layer':>5}  {'teacher':>10}  {'student':>10}  aligned")
    for index in range(max(len(teacher), len(student))):
        t = f"{teacher[index]:.6f}" if index < len(teacher) else ""
        s = f"{student[index]:.6f}" if index < len(student) else ""
        note = f"student {index} <-> teacher {aligned_with[index]}" if index in aligned_with else ""
        print(f"{index:>5}  {t:>10}  {s:>10}  {note}")
    for key in AGREEMENT_KEYS:
        value = agreement[key]
        shown = "n/a (no aligned pairs)" if key.endswith("aligned") and not pairs else f"{value:.4f}"
        print(f"{key:>16}: {shown}")

    os.makedirs(args.output, exist_ok=True)
    plot_path = plot_intensity_curves(
        os.path.join(args.output, COMPARE_PLOT), teacher, [(f"student: {_short(args.student)} ({len(student) - 1} blocks)", student)],
        pairs=pairs, title=f"Layer intensity on {num_samples} examples", teacher_label=f"teacher: {_short(args.teacher)}",
    )
    json_path = os.path.join(args.output, COMPARE_JSON)
    report = {
        "format": "hf_spectralkd.Compare/1",
        "teacher": {"reference": args.teacher, "path": teacher_location, "num_layers": len(teacher) - 1, "intensity": teacher},
        "student": {"reference": args.student, "path": student_location, "num_layers": len(student) - 1, "intensity": student},
        "pairs": [list(p) for p in pairs],
        "layer_map_source": layer_map_source,
        "agreement": {key: _json_number(value) for key, value in agreement.items()},
        "data": args.data, "task": task, "sample": "file order" if args.in_order else f"random (seed {args.seed})",
        "text_column": args.text_column if task == "text-classification" else None, "num_samples": num_samples,
        "max_length": args.max_length if task == "text-classification" else None,
    }
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print(f"wrote {json_path} and {plot_path}")
    return 0
