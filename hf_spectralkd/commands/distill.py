"""``hf-spectralkd distill``: run a recipe end to end (teacher -> analysis -> student -> evaluation -> results)."""

from __future__ import annotations

import argparse

HELP = "Run a recipe YAML: fine-tune/load the teacher, analyse it, distil a student, evaluate, write results.json."

EPILOG = """\
overrides: after the options, any number of section.key=value pairs (values are YAML), e.g.
  hf-spectralkd distill --config recipes/clinc150_minilm.yaml training.num_train_epochs=1 output.dir=runs/try

output layout (<output.dir>, default runs/<recipe name>):
  teacher/    fine-tuned teacher + tokenizer + fingerprint.json (reused while its inputs are unchanged)
  analysis/   spectral_profile.json, layer_intensity.png (teacher, training data)
  student/    distilled student + tokenizer, layer_map.json, layer_intensity.png, README.md (model card),
              distillation_dynamics.json/png, training_log.json
  baseline/   the same student trained without distillation (evaluation.baseline: true)
  evaluation/ per-model metrics on the evaluation split
  results.json, summary.md
Finished stages carry a stage_done.json marker; an interrupted run resumes after them.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "distill", help=HELP, description=HELP, epilog=EPILOG,
        formatter_class=lambda prog: _Formatter(prog, max_help_position=32),
    )
    parser.add_argument("--config", required=True, metavar="RECIPE", help="recipe YAML file (see recipes/)")
    parser.add_argument("--smoke", action="store_true", default=False,
                        help="shrink the recipe to a ~1 minute run (a few hundred examples, a few steps per stage)")
    parser.add_argument("--dry-run", action="store_true", default=False,
                        help="check the recipe (keys, values, models, data) as a real run would before its first "
                             "stage, and print it; runs and writes nothing")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="recipe overrides, applied before validation")
    parser.set_defaults(func=run)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def run(args) -> int:
    from ..recipes import load_recipe

    recipe = load_recipe(args.config, args.overrides, smoke_run=args.smoke)
    if args.dry_run:  # every check the real run makes before its first stage, then the resolved recipe
        import yaml

        from ..pipeline import preflight

        preflight(recipe)
        print(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        return 0
    import signal
    import threading

    from ..pipeline import run_pipeline

    def _terminate(signum, frame):  # `kill` behaves like Ctrl-C: the running stage is dropped, finished ones kept
        raise KeyboardInterrupt

    handler_set = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handler_set else None
    try:
        run_pipeline(recipe)
    finally:
        if handler_set:
            signal.signal(signal.SIGTERM, previous)
    return 0
