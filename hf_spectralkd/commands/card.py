"""``hf-spectralkd card``: (re)write the model card of a finished run, without pushing anything.

Writes README.md (and the layer-intensity PNG) into the run's student directory and, with ``--output-dir``,
copies the card and its images there too (how ``model_cards/`` of this repository is produced).
"""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "card",
        help="Write the model card (README.md) of a finished run, offline.",
        description=(
            "Render the SpectralKD model card from a finished run's results.json into <run>/student/README.md "
            "(text the user wrote outside the generated block is kept), and optionally copy it with its images "
            "to --output-dir."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, default=argparse.SUPPRESS,
                        help="A run directory (results.json + student/) or a student directory.")
    parser.add_argument("--output-dir", default=None,
                        help="Also copy README.md and the PNGs the card shows into this directory.")
    parser.add_argument("--repo-id", default=None,
                        help="Hub repo the card is for (used in the usage snippet and name).")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an existing README.md entirely instead of keeping the user's text.")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..cards import write_model_card
    from ..constants import CARD_FILENAME, DYNAMICS_PLOT_FILENAME, PLOT_FILENAME
    from ..results import find_run_results
    from ..utils import copy_file

    results, student_dir = find_run_results(args.run_dir, "--run-dir")
    if results is None:
        raise ValueError(
            f"no results.json in {args.run_dir} or its parent: the card is built from a finished run's results "
            "(run `hf-spectralkd distill --config ...` to the end first)"
        )
    usage_path = os.path.relpath(student_dir) if not args.repo_id else None
    path = write_model_card(student_dir, results, repo_id=args.repo_id, overwrite=args.overwrite,
                            usage_path=usage_path)
    print(f"wrote {path}")
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        for name in (CARD_FILENAME, PLOT_FILENAME, DYNAMICS_PLOT_FILENAME):
            source = os.path.join(student_dir, name)
            if os.path.isfile(source):
                copy_file(source, os.path.join(args.output_dir, name))
                print(f"copied {name} to {args.output_dir}")
    return 0
