"""``hf-spectralkd push``: upload a finished run's distilled student, with its model card, to the Hub.

The card (README.md) is (re)written in the student directory first, so it is there whether or not the upload
succeeds; a failed upload prints one message with the command that retries, and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="Push a distilled student and its model card to the Hugging Face Hub.",
        description=(
            "Write the SpectralKD model card (README.md, with the layer-intensity graph) into the student directory "
            "of a finished run and upload the directory (weights, tokenizer, card, graphs) to a Hub model repo. "
            "Needs a token (`hf auth login` or HF_TOKEN) and network access (HF_HUB_OFFLINE unset)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-dir", required=True, default=argparse.SUPPRESS,
                        help="A run directory (results.json + student/) or the student directory itself.")
    parser.add_argument("--repo-id", required=True, default=argparse.SUPPRESS,
                        help="Hub repo to create or update, 'user/name' or 'org/name'.")
    parser.add_argument("--private", action="store_true", help="Create the repo as private (no effect if it exists).")
    parser.add_argument("--revision", default=None, help="Branch to push to, created if missing (None: main).")
    parser.add_argument("--commit-message", default=None,
                        help="Commit message (None: 'Upload SpectralKD student distilled from <teacher>').")
    parser.add_argument("--token", default=None, help="Hub token (None: HF_TOKEN or the `hf auth login` token).")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..hub import HubPushError, push_student

    try:
        info = push_student(
            args.model_dir, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, token=args.token,
        )
    except HubPushError as exc:
        print(f"hf-spectralkd push: error: {exc}", file=sys.stderr)
        return 1
    url = getattr(info, "commit_url", None) or getattr(info, "repo_url", None) or f"https://huggingface.co/{args.repo_id}"
    print(f"pushed {args.model_dir} to {args.repo_id}: {url}")
    return 0
