"""``hf-spectralkd`` command line: a thin layer over the library.

Each sub-command lives in ``hf_spectralkd/commands/<name>.py`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` (called with the parsed namespace; returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError  # library errors the CLI prints as one line (the library never imports the CLI)

# sub-command modules, in the order `--help` lists them
COMMANDS = ("init", "analyze", "distill", "evaluate", "compare", "push", "card", "cache_teacher")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="hf-spectralkd",
        description="Spectral knowledge distillation (SpectralKD) for Hugging Face and timm models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hf_spectralkd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.commands.{name}":
                continue  # not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError) as exc:
        print(f"hf-spectralkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if getattr(exc, "filename", None) is None:
            raise  # not about a path: a bug or an environment failure, keep its traceback
        # a path that cannot be read or written (missing, permissions, a file in the way)
        print(f"hf-spectralkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = "; finished stages are kept and the next run resumes from them" if args.command == "distill" else ""
        print(f"hf-spectralkd {args.command}: interrupted{kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
