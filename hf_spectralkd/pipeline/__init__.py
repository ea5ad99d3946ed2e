"""The recipe pipeline behind ``hf-spectralkd distill --config RECIPE``.

A recipe is resolved once into a frozen :class:`RunPlan` by :func:`preflight` (every check before any work);
then each stage reads the plan and writes its folder under the output directory:

1. ``teacher``   fine-tune ``teacher.base`` -> ``<out>/teacher/`` (+ ``fingerprint.json``), or load ``teacher.model``;
2. ``analysis``  spectral analysis of the teacher on training data -> ``<out>/analysis/``;
3. ``student``   build the student and distil it with :class:`~hf_spectralkd.SpectralDistillationTrainer`
                 -> ``<out>/student/`` (``teacher.cache``: the teacher's outputs are read from
                 ``<out>/teacher_cache/``);
4. ``evaluate``  accuracy and macro-F1 on ``evaluation.split`` -> ``<out>/evaluation/<role>.json``;
5. ``baseline``  (``evaluation.baseline``) the same student trained without distillation -> ``<out>/baseline/``;
   then the model to use is chosen on the validation split (results.json's ``recommended``);
6. ``results``   ``<out>/results.json``, ``<out>/summary.md`` and a printed summary table.

:func:`~hf_spectralkd.pipeline.runner.run_stage` owns what every stage shares: reuse while its inputs'
fingerprint is unchanged, an all-or-nothing folder (an interrupted run keeps the finished stages and resumes
after them) and timing. Everything modality-specific goes through the task registry (:mod:`hf_spectralkd.tasks`).

Files: ``plan.py`` (plan, preflight, arguments, fingerprints), ``checks.py`` (the checks before any work),
``runner.py`` (run_stage), ``stages.py`` (one function per stage), ``evaluation.py`` (evaluate_model),
``report.py`` (results dict, summary table).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..constants import FINGERPRINT_FILENAME, RESULTS_FILENAME, STAGE_MARKER, SUMMARY_FILENAME
from ..layer_map import LayerMap
from ..recipes import Recipe
from ..results import RunResults
from ..tasks.sources import data_warnings
from ..utils import write_text
from .checks import check_depths, check_single_process
from .evaluation import evaluate_model
from .plan import RunPlan, preflight
from .report import results_dict, summary_markdown
from .runner import StageResult, run_stage, stage_done
from .stages import (
    Run,
    analysis_stage,
    baseline_stage,
    evaluate_stage,
    recommend_stage,
    student_stage,
    tag,
    teacher_stage,
)
from .state import mark_run_dir

__all__ = ["run_pipeline", "preflight", "evaluate_model", "summary_markdown", "RunPlan", "run_stage", "stage_done",
           "StageResult", "check_single_process", "check_depths", "STAGE_MARKER", "FINGERPRINT_FILENAME",
           "RESULTS_FILENAME"]


def run_pipeline(recipe: Recipe, log: Callable[[str], None] = print) -> dict:
    """Run every stage of ``recipe`` (resuming finished ones) and return the results dictionary."""
    plan = preflight(recipe)
    datasets = plan.task.prepare_datasets(recipe, plan.data, plan.processor)
    run = Run(plan, datasets, plan.task.data_collator(plan.processor), log)
    os.makedirs(plan.out, exist_ok=True)
    mark_run_dir(plan.out)  # from now on the folder's run files are this run's own (replaced, never others')
    log(f"[hf-spectralkd] recipe {recipe.name!r}{' (smoke)' if recipe.smoke else ''}: task {recipe.task}, "
        f"{len(plan.label_names)} labels, splits {plan.data.info['splits']}; outputs in {plan.out}")
    for note in plan.data.info.get("notes") or ():  # what was decided about the data (e.g. the label order)
        log(f"[hf-spectralkd] {note}")
    for warning in data_warnings(plan.data.info):  # (also in results.json's warnings and summary.md)
        log(f"[hf-spectralkd] warning: {warning}")

    teacher = teacher_stage(run)
    analysis = analysis_stage(run, teacher)  # the profile and the student's init layers: the plan stays as it is
    student = student_stage(run, teacher, analysis)  # with distillation.candidates: the best on validation
    student_dir = student.directory
    models = evaluate_stage(run, teacher, student_dir, analysis.init_layers)
    baseline = baseline_stage(run, teacher, analysis.init_layers)
    recommended = recommend_stage(run, student_dir, baseline)
    results = results_dict(run, models, baseline, LayerMap.of_student(student_dir), analysis.profile, recommended,
                           student=student)
    write_results(run, results, student_dir)
    if recipe.hub.push_to_hub:
        # everything is saved by now: a failed push raises HubPushError (one line, how to retry), nothing is lost
        from ..hub import push_student

        hub = recipe.hub
        log(f"[hub] pushing {student_dir} to {hub.hub_model_id}" + (" (private)" if hub.private else ""))
        push_student(plan.out, hub.hub_model_id, private=hub.private)
        log(f"[hub] pushed: https://huggingface.co/{hub.hub_model_id}")
    return results.to_dict()


def write_results(run: Run, results: RunResults, student_dir: str) -> None:
    """The results stage: results.json, summary.md, the student's model card, and the printed summary."""
    import torch

    from ..cards import write_model_card
    from ..results import stage_records

    out = run.plan.out
    results.stages = stage_records(out)  # card/push check that the run dir still holds these stages
    results.save(out)
    summary = summary_markdown(results.to_dict())
    write_text(os.path.join(out, SUMMARY_FILENAME), summary)
    write_model_card(student_dir, results)
    run.log(f"{tag('results')} {os.path.join(out, RESULTS_FILENAME)}, {os.path.join(out, SUMMARY_FILENAME)}")
    run.log(summary)
    torch.set_grad_enabled(True)
