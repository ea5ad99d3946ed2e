"""The stages of a recipe run (listed in :mod:`hf_spectralkd.pipeline`), one function each: every stage reads
the plan and writes its own folder through :func:`~hf_spectralkd.pipeline.runner.run_stage`; later stages get
what earlier ones produced (the teacher, its profile, the student's folder) as arguments.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..constants import (
    CANDIDATES_DIRNAME,
    CANDIDATES_FILENAME,
    EVALUATION_DIRNAME,
    FINETUNE_STOP_FILENAME,
    FINGERPRINT_FILENAME,
    PLOT_FILENAME,
    PROFILE_FILENAME,
    STAGES,
    TEACHER_CACHE_DIRNAME,
    TRAINING_LOG_FILENAME,
)
from ..guards import check_finite_parameters
from ..layer_map import LayerSelection, choose_init_layers, select_teacher_layers, selects_layers
from ..metrics import metric_label
from ..sampling import count_labelled, labelled_only
from ..utils import hash_object, read_json, write_json
from .checks import check_depths, student_depth
from .evaluation import evaluate_model
from .plan import TEACHER_TRAINER_DIRNAME, RunPlan
from .runner import StageResult, resume_checkpoint, run_stage

__all__ = ["Run", "Teacher", "Analysis", "Student", "STAGE_NUMBERS", "teacher_stage", "analysis_stage",
           "resolve_init_layers", "student_stage", "train_candidates", "evaluate_stage", "baseline_stage",
           "recommend_stage", "finetune_stop"]

STAGE_NUMBERS = {name: number for number, name in enumerate(STAGES, start=1)}


def tag(name: str) -> str:
    """The prefix of a stage's log lines, e.g. ``[3/6 student]``."""
    return f"[{STAGE_NUMBERS[name]}/{len(STAGE_NUMBERS)} {name}]"


@dataclass
class Run:
    """One run in progress: its plan (settings), the prepared data, and what the stages have done so far."""

    plan: RunPlan
    datasets: Any  # prepared splits (model inputs + labels)
    collator: Any
    log: Callable[[str], None] = print
    stages: list = field(default_factory=list)  # StageResult of every stage run or reused, in order
    eval_seconds: float = 0.0
    started: float = field(default_factory=time.time)

    @property
    def compute_metrics(self):
        """The task's ``Trainer`` ``compute_metrics`` for this run's labels (every Trainer of the run uses it)."""
        return self.plan.task.compute_metrics(self.plan.label_names)

    def stage(self, name: str, fingerprint: str, fn: Callable[[str], None], reusing: str, running: str) -> StageResult:
        result = run_stage(self.plan, name, fingerprint, fn, log=self.log,
                           reusing=f"{tag(name)} {reusing}", running=f"{tag(name)} {running}")
        self.stages.append(result)
        return result


@dataclass(frozen=True)
class Teacher:
    model: Any
    path: str  # where the classifier was loaded from
    source: str  # what the recipe names (teacher.base or teacher.model)


# ---------------------------------------------------------------------------------------------- 1. teacher
def teacher_stage(run: Run) -> Teacher:
    plan, recipe = run.plan, run.plan.recipe
    task, fps = plan.task, plan.fingerprints
    if not recipe.teacher.base:
        run.log(f"{tag('teacher')} using the fine-tuned classifier {recipe.teacher.model} (no fine-tuning)")
        model = task.load_classifier(recipe, plan.teacher_ref, plan.label_names, what="teacher.model")
        teacher = Teacher(model, plan.teacher_ref, recipe.teacher.model)
    else:
        def finetune(directory: str) -> None:
            from transformers import set_seed

            set_seed(recipe.teacher.finetune.seed)
            model = task.load_base(recipe, plan.teacher_ref, plan.label_names)
            trainer = teacher_trainer(run, model)
            trainer.train(resume_from_checkpoint=resume_checkpoint(directory))
            check_finite_parameters(model, "teacher")  # never save (and distil from) a diverged teacher
            write_json(os.path.join(directory, FINETUNE_STOP_FILENAME), finetune_stop(trainer, task.primary_metric))
            task.save_model(model, directory)
            task.save_processor(plan.processor, directory)
            shutil.rmtree(os.path.join(directory, TEACHER_TRAINER_DIRNAME), ignore_errors=True)
            write_json(os.path.join(directory, FINGERPRINT_FILENAME),
                       {"fingerprint": fps.teacher, "inputs": fps.teacher_inputs})

        ft = recipe.teacher.finetune
        budget = f"{ft.max_steps} steps" if ft.max_steps and ft.max_steps > 0 else f"{ft.epochs:g} epochs"
        if ft.select_best:
            budget += (f" at most, best epoch by validation {metric_label(task.primary_metric)}, early stopping after "
                       f"{ft.patience} worse epochs")
        where = plan.stage_dir("teacher")
        done = run.stage("teacher", fps.teacher, finetune,
                         reusing=f"reusing the fine-tuned teacher in {where} (inputs unchanged)",
                         running=f"fine-tuning {recipe.teacher.base} on {count_labelled(run.datasets['train'])} "
                                 f"labelled examples ({budget}, lr {ft.learning_rate:g}) -> {where}")
        model = task.load_classifier(recipe, done.directory, plan.label_names, what="fine-tuned teacher")
        teacher = Teacher(model, done.directory, recipe.teacher.base)
    teacher.model.eval()
    check_depths(recipe, task.num_layers(teacher.model), plan.aligned_layers)
    return teacher


def finetune_stop(trainer, metric: str) -> dict:
    """Why the teacher's fine-tuning stopped, from its log history: ``early-stopping`` (validation stopped improving
    before the budget ended), ``budget`` (the budget ran out while the last epoch was still the best: a longer
    budget may help), ``budget-plateau`` (the budget ran out after the best epoch), or ``no-validation``."""
    key = f"eval_{metric}"
    evals = [(e.get("epoch"), e[key]) for e in trainer.state.log_history if key in e]
    planned = trainer.args.num_train_epochs if trainer.args.max_steps <= 0 else None
    done = trainer.state.epoch
    if not evals:
        return {"reason": "no-validation", "epochs": done, "planned_epochs": planned}
    best_epoch, best = max(evals, key=lambda item: (item[1], -(item[0] or 0)))
    last_epoch = evals[-1][0]
    finished = trainer.state.global_step >= trainer.state.max_steps
    if not finished:
        reason = "early-stopping"
    else:
        reason = "budget" if best_epoch == last_epoch else "budget-plateau"
    return {"reason": reason, "epochs": done, "planned_epochs": planned, "best_epoch": best_epoch,
            f"best_{metric}": best}


def teacher_trainer(run: Run, model):
    """The teacher fine-tuning's Trainer, on the labelled training rows (a transfer set has no labels). With
    ``teacher.finetune.select_best`` it evaluates every epoch, keeps the best checkpoint by the task's primary
    validation metric (accuracy; entity F1 for token classification) and stops after ``patience`` epochs without
    improvement: the epoch count is a budget, not a setting."""
    from transformers import EarlyStoppingCallback

    plan = run.plan
    ft = plan.recipe.teacher.finetune
    extra = {}
    if ft.select_best:
        extra = dict(eval_dataset=run.datasets["validation"], compute_metrics=run.compute_metrics,
                     callbacks=[EarlyStoppingCallback(early_stopping_patience=ft.patience)])
    train_dataset = labelled_only(run.datasets["train"])
    return plan.task.trainer_class()(model=model, args=plan.teacher_args, train_dataset=train_dataset,
                                     data_collator=run.collator, **extra)


# ---------------------------------------------------------------------------------------------- 2. analysis
@dataclass(frozen=True)
class Analysis:
    """What the analysis stage gives the later stages: the teacher's profile and the teacher blocks the student
    copies (``student.init: teacher_layers``; None for another ``student.init``)."""

    profile: Any
    init_layers: list | None


def analysis_stage(run: Run, teacher: Teacher) -> Analysis:
    """The teacher's spectral profile on the seeded training sample the trainer's own selection would read, and
    the student's init layers chosen from it (:func:`resolve_init_layers`)."""
    from ..analysis import collect_profile, plot_layer_intensity
    from ..sampling import sample_dataset
    from ..spectral import SpectralProfile

    plan = run.plan
    args = plan.distill_args
    n = args.selection_samples

    def analyse(directory: str) -> None:
        from torch.utils.data import DataLoader

        subset = sample_dataset(run.datasets["train"], n, args.seed)
        loader = DataLoader(subset, batch_size=plan.eval_batch_size, shuffle=False, collate_fn=run.collator)
        profile = collect_profile(teacher.model, loader, max_samples=n, progress=True,
                                  description="teacher spectral analysis")
        selected = select_teacher_layers(LayerSelection.from_config(args), profile.intensity, plan.aligned_layers,
                                         profile.entropy)
        profile.metadata.update({"role": "teacher", "model": teacher.source, "selected_layers": selected,
                                 "strategy": args.layer_selection, "num_samples": profile.num_samples})
        profile.save(os.path.join(directory, PROFILE_FILENAME))
        plot_layer_intensity(profile, os.path.join(directory, PLOT_FILENAME), selected=selected,
                             title=f"Teacher layer intensity (orange = selected by {args.layer_selection})")

    where = plan.stage_dir("analysis")
    done = run.stage("analysis", plan.fingerprints.analysis, analyse,
                     reusing=f"reusing the teacher's spectral profile in {where}",
                     running=f"spectral analysis of the teacher on {min(n, len(run.datasets['train']))} training "
                             f"examples -> {where}/{PROFILE_FILENAME}, {PLOT_FILENAME}")
    profile = SpectralProfile.load(os.path.join(done.directory, PROFILE_FILENAME))
    return Analysis(profile, resolve_init_layers(plan, profile))


def resolve_init_layers(plan: RunPlan, profile) -> list | None:
    """The teacher blocks copied into the student (``student.init: teacher_layers``), from the recipe's rule
    (:func:`~hf_spectralkd.layer_map.choose_init_layers`); the student's depth is at most the teacher's (checked in
    the teacher stage)."""
    s = plan.recipe.student
    if s.init != "teacher_layers":
        return None
    intensity = [float(v) for v in profile.intensity]
    return choose_init_layers(s.init_layers, s.num_layers, len(intensity) - 1, intensity,
                              LayerSelection.from_config(plan.distill_args), entropy=profile.entropy)


# ---------------------------------------------------------------------------------------------- 3. student
def build_student(plan: RunPlan, teacher: Teacher, init_layers: list | None):
    """The student before training, seeded (a LoRA student: adapters + classifier train, the rest is frozen)."""
    from transformers import set_seed

    set_seed(plan.training_values["seed"])
    model = plan.task.build_student(plan.recipe, teacher.model, plan.label_names, init_layers)
    if plan.recipe.student.peft:
        from ..peft_students import apply_peft

        model = apply_peft(model, plan.recipe.student.peft)
    return model


def save_trained(plan: RunPlan, trainer, directory: str, stage: str) -> None:
    """A trained student (or baseline), its processor and its log history in ``directory`` (the running folder of
    ``stage``)."""
    check_finite_parameters(trainer.model, stage)  # a diverged model is never saved, evaluated or carded
    if plan.recipe.student.peft:  # merged model in <dir>/, the PEFT adapter in <dir>/adapter/
        from ..peft_students import save_peft_student

        # the adapter config names its base by the path the stage folder will have once complete
        save_peft_student(trainer, directory, plan.stage_dir(stage))
    else:
        trainer.save_model(directory)
    plan.task.save_processor(plan.processor, directory)
    write_json(os.path.join(directory, TRAINING_LOG_FILENAME), trainer.state.log_history)


@dataclass(frozen=True)
class Student:
    """What the student stage gives the later stages: the distilled student's folder, the distillation config it was
    trained with (the chosen candidate's, with ``distillation.candidates``) and the candidates' records."""

    directory: str
    args: Any
    candidates: list | None = None  # results.json's ``candidates`` (None without distillation.candidates)


def student_stage(run: Run, teacher: Teacher, analysis: Analysis) -> Student:
    """Distil the teacher into the student; the trainer aligns the layers it selects from the analysis' profile.
    With ``distillation.candidates`` every candidate is trained on the same budget (one teacher cache, the teacher
    runs once) and evaluated on the validation split; the best is the stage's student (:func:`train_candidates`)."""
    plan, recipe = run.plan, run.plan.recipe
    init_layers = analysis.init_layers

    def distil(directory: str) -> None:
        if plan.candidate_args:
            train_candidates(run, teacher, analysis, directory)
        else:
            distil_one(run, teacher, analysis, plan.distill_args, directory)
        analysis_dir = plan.stage_dir("analysis")
        for name in (PROFILE_FILENAME, PLOT_FILENAME):
            if not os.path.exists(os.path.join(directory, name)):
                shutil.copy(os.path.join(analysis_dir, name), os.path.join(directory, name))

    init = recipe.student.init
    what = {"teacher_layers": f"{len(init_layers or [])} blocks copied from teacher layers {init_layers}",
            "pretrained": f"pretrained {recipe.student.model}", "config": "a fresh model from the config"}[init]
    method = (f"{len(plan.candidate_args)} candidate settings, the best by validation "
              f"{metric_label(plan.task.primary_metric)} kept" if plan.candidate_args else "SpectralKD")
    done = run.stage("student", plan.fingerprints.student, distil,
                     reusing=f"reusing the distilled student in {plan.stage_dir('student')}",
                     running=f"distilling the teacher into a student ({what}) with {method} -> "
                             f"{plan.stage_dir('student')}")
    if not plan.candidate_args:
        return Student(done.directory, plan.distill_args)
    records = read_json(os.path.join(done.directory, CANDIDATES_FILENAME))
    chosen = next(r for r in records if r["chosen"])
    return Student(done.directory, plan.candidate_args[chosen["index"]][1], records)


def distil_one(run: Run, teacher: Teacher, analysis: Analysis, args, directory: str, store_layers=None) -> None:
    """One distilled student, trained with ``args`` and saved in ``directory``."""
    from ..distillation_trainer import SpectralDistillationTrainer

    plan, recipe = run.plan, run.plan.recipe
    cache_dir = os.path.join(plan.out, TEACHER_CACHE_DIRNAME) if recipe.teacher.cache else None
    if cache_dir and args.alignment == "attention" and args.beta > 0:
        run.log(f"{tag('student')} alignment 'attention' reads the teacher's Q/K/V, which the cache does not hold: "
                "this student runs the teacher live")
        cache_dir = None
    # automatic selection: the trainer selects from the analysis' profile (no second analysis); with teacher_layers
    # given or no alignment term it selects nothing, and the student's folder gets the analysis' files
    automatic = selects_layers(LayerSelection.from_config(args))
    trainer = SpectralDistillationTrainer(
        model=build_student(plan, teacher, analysis.init_layers), args=dataclasses.replace(args, output_dir=directory)
        if args.output_dir != directory else args, teacher_model=teacher.model,
        teacher_profile=analysis.profile if automatic else None, teacher_cache=cache_dir,
        train_dataset=run.datasets["train"], eval_dataset=run.datasets["validation"], data_collator=run.collator,
        compute_metrics=run.compute_metrics,
    )
    if cache_dir:
        trainer.setup_teacher_cache(store_layers=store_layers)
    trainer.train(resume_from_checkpoint=resume_checkpoint(directory))
    if trainer.teacher_cache is not None:
        cache = trainer.teacher_cache
        run.log(f"{tag('student')} teacher cache: {cache_dir} ({len(cache)} examples, "
                f"{cache.disk_bytes() / 2**20:.1f} MiB); training read the teacher's outputs from it")
    save_trained(plan, trainer, directory, "student")


def candidate_layers(plan: RunPlan, analysis: Analysis, depth: int, teacher_depth: int) -> list:
    """The union of the teacher layers the candidates align (what one shared teacher cache stores) for a student of
    ``depth`` blocks."""
    from ..layer_map import pair_layers

    layers = set()
    profile = analysis.profile
    for _, args in plan.candidate_args:
        if args.beta > 0 and args.alignment != "attention":
            chosen = pair_layers(LayerSelection.from_config(args), depth, teacher_depth, profile.intensity,
                                 profile.entropy)
            layers |= set(chosen.teacher_layers)
    return sorted(layers)


def _student_depth(plan: RunPlan, teacher: Teacher, analysis: Analysis) -> int:
    """The student's block count: the copied teacher blocks, the recipe's depth, or (only when neither says) the
    depth of a student built to count them."""
    if plan.recipe.student.init == "teacher_layers" and analysis.init_layers:
        return len(analysis.init_layers)
    depth = student_depth(plan.recipe)
    return depth if depth is not None else plan.task.num_layers(build_student(plan, teacher, analysis.init_layers))


def train_candidates(run: Run, teacher: Teacher, analysis: Analysis, directory: str) -> None:
    """``distillation.candidates``: each candidate student trained (same budget, same seed, the teacher's outputs
    from one cache) into ``directory/candidates/<i>``, evaluated on the validation split; the best by the task's
    primary metric (ties: the earlier candidate) is moved to ``directory``, the others' weights are removed, and
    ``candidates.json`` records every candidate's overrides, validation metrics and training time."""
    from .plan import candidate_name

    plan = run.plan
    metric = plan.task.primary_metric
    validation = run.datasets.get("validation")
    if validation is None or len(validation) == 0:
        raise ValueError("distillation.candidates are compared on the validation split, but this run has none: give "
                         "data.validation_file (or a validation split), or drop distillation.candidates")
    teacher_depth = plan.task.num_layers(teacher.model)
    store = candidate_layers(plan, analysis, _student_depth(plan, teacher, analysis), teacher_depth)
    records = []
    for index, (overrides, args) in enumerate(plan.candidate_args):
        name = candidate_name(index, overrides)
        where = os.path.join(directory, CANDIDATES_DIRNAME, str(index + 1))
        os.makedirs(where, exist_ok=True)
        run.log(f"{tag('student')} candidate {name} -> {where}")
        start = time.time()
        distil_one(run, teacher, analysis, args, where, store_layers=store)
        seconds = round(time.time() - start, 2)
        model = plan.task.load_classifier(plan.recipe, where, plan.label_names, what=f"candidate student {name}")
        evaluation = evaluate_model(model, validation, run.collator, batch_size=plan.eval_batch_size,
                                    trainer_class=plan.task.trainer_class(), compute_metrics=run.compute_metrics)
        del model
        records.append({"index": index, "name": name, "overrides": overrides, "split": "validation",
                        "metrics": evaluation["metrics"], "train_seconds": seconds, "chosen": False})
        run.log(f"{tag('student')}   validation {metric_label(metric)} "
                f"{100 * evaluation['metrics'][metric]:.2f} ({seconds:.0f} s)")
    best = max(records, key=lambda r: (r["metrics"][metric], -r["index"]))
    best["chosen"] = True
    chosen_dir = os.path.join(directory, CANDIDATES_DIRNAME, str(best["index"] + 1))
    for entry in os.listdir(chosen_dir):
        os.replace(os.path.join(chosen_dir, entry), os.path.join(directory, entry))
    shutil.rmtree(os.path.join(directory, CANDIDATES_DIRNAME))
    write_json(os.path.join(directory, CANDIDATES_FILENAME), records, indent=1)
    run.log(f"{tag('student')} chosen on validation {metric_label(metric)}: {best['name']}")


# ---------------------------------------------------------------------------------------------- 4. evaluate
def model_section(plan: RunPlan, model, source, path: str, evaluation: dict) -> dict:
    """A model's entry of results.json: origin, sizes, metrics and throughput."""
    return {"source": source, "path": path, **plan.task.describe(model), "metrics": evaluation["metrics"],
            "throughput_samples_per_s": evaluation["throughput_samples_per_s"]}


def evaluate_role(run: Run, role: str, model_fingerprint: str, model=None, split: str | None = None,
                  load: Callable[[], Any] | None = None) -> dict:
    """``model``'s metrics on ``split`` (default: the evaluation split), reused while unchanged from
    ``evaluation/<role>.json`` (``evaluation/<role>_<split>.json`` for a split other than the evaluation split).
    Without ``model``, ``load()`` returns it, called only when the cached metrics cannot be reused."""
    plan = run.plan
    split = split or plan.eval_split
    dataset = run.datasets[split]
    name = role if split == plan.eval_split else f"{role}_{split}"
    path = os.path.join(plan.out, EVALUATION_DIRNAME, f"{name}.json")
    # keyed by the data's content too: a changed evaluation file is evaluated again
    fingerprint = hash_object({"model": model_fingerprint, "split": split, "n": len(dataset),
                               "data": plan.fingerprints.data})
    cached = read_json(path)
    if isinstance(cached, dict) and cached.get("fingerprint") == fingerprint:
        return cached
    start = time.time()
    if model is None:
        model = load()
    result = evaluate_model(model, dataset, run.collator, batch_size=plan.eval_batch_size,
                            trainer_class=plan.task.trainer_class(), compute_metrics=run.compute_metrics)
    run.eval_seconds += time.time() - start
    result["fingerprint"] = fingerprint
    write_json(path, result)
    return result


def evaluate_stage(run: Run, teacher: Teacher, student_dir: str, init_layers: list | None) -> dict:
    """The ``teacher`` and ``student`` sections of results.json, each evaluated on the evaluation split."""
    plan, recipe = run.plan, run.plan.recipe
    eval_dir = os.path.join(plan.out, EVALUATION_DIRNAME)
    os.makedirs(eval_dir, exist_ok=True)
    run.log(f"{tag('evaluate')} teacher and student on the {plan.eval_split} split "
            f"({len(run.datasets[plan.eval_split])} examples) -> {eval_dir}")
    teacher_eval = evaluate_role(run, "teacher", plan.fingerprints.teacher, teacher.model)
    stop = read_json(os.path.join(teacher.path, FINETUNE_STOP_FILENAME)) if recipe.teacher.base else None
    student = plan.task.load_classifier(recipe, student_dir, plan.label_names, what="distilled student")
    student_eval = evaluate_role(run, "student", plan.fingerprints.student, student)
    return {
        "teacher": {**model_section(plan, teacher.model, teacher.source, teacher.path, teacher_eval),
                    **({"finetune_stop": stop} if isinstance(stop, dict) else {})},
        "student": {**model_section(plan, student, recipe.student.model or teacher.source, student_dir, student_eval),
                    "init": recipe.student.init, "init_layers": init_layers},
    }


# ---------------------------------------------------------------------------------------------- 5. baseline
def baseline_stage(run: Run, teacher: Teacher, init_layers: list | None) -> dict | None:
    """The no-KD baseline (same student, same budget) trained and evaluated: its results.json section, or None."""
    plan, recipe = run.plan, run.plan.recipe
    if not recipe.evaluation.baseline:
        run.log(f"{tag('baseline')} skipped (evaluation.baseline: false)")
        return None

    train_rows = labelled_only(run.datasets["train"])  # no-KD: only the rows that have a label

    def train(directory: str) -> None:
        trainer = plan.task.trainer_class()(
            model=build_student(plan, teacher, init_layers),
            args=baseline_arguments(plan, run.datasets["train"], train_rows),
            train_dataset=train_rows, eval_dataset=run.datasets["validation"], data_collator=run.collator,
            compute_metrics=run.compute_metrics,
        )
        trainer.train(resume_from_checkpoint=resume_checkpoint(directory))
        save_trained(plan, trainer, directory, "baseline")

    where = plan.stage_dir("baseline")
    done = run.stage("baseline", plan.fingerprints.baseline, train, reusing=f"reusing the no-KD baseline in {where}",
                     running=f"training the same student without distillation (same budget) -> {where}")
    model = plan.task.load_classifier(recipe, done.directory, plan.label_names, what="baseline student")
    evaluation = evaluate_role(run, "baseline", plan.fingerprints.baseline, model)
    return {**model_section(plan, model, recipe.student.model or teacher.source, done.directory, evaluation),
            "init": recipe.student.init, "init_layers": init_layers}


def recommend_stage(run: Run, student_dir: str, baseline: dict | None) -> dict | None:
    """The model to use, chosen on the validation split (never on a test split): results.json's ``recommended``
    section (:func:`~.report.recommendation`). The distilled student and the baseline are evaluated on it, reused
    from ``evaluation/`` while unchanged. None, and nothing evaluated, without a baseline or a validation split."""
    from .report import recommendation

    plan, recipe = run.plan, run.plan.recipe
    split = "validation"
    if not baseline or split not in run.datasets or len(run.datasets[split]) == 0:
        return None
    run.log(f"{tag('baseline')} choosing the model to use: distilled student and no-KD baseline on the {split} split "
            f"({len(run.datasets[split])} examples) -> {os.path.join(plan.out, EVALUATION_DIRNAME)}")
    metric, scores = plan.task.primary_metric, {}
    for role, directory, fingerprint, what in (
            ("student", student_dir, plan.fingerprints.student, "distilled student"),
            ("baseline", baseline["path"], plan.fingerprints.baseline, "baseline student")):
        def load(directory=directory, what=what):
            return plan.task.load_classifier(recipe, directory, plan.label_names, what=what)

        scores[role] = evaluate_role(run, role, fingerprint, split=split, load=load)["metrics"][metric]
    return recommendation(scores["student"], scores["baseline"], recipe.evaluation.recommend_margin,
                          student_dir, baseline["path"], split, metric=metric)


def baseline_arguments(plan: RunPlan, distill_rows, baseline_rows):
    """The baseline's TrainingArguments: the student's budget. When a transfer set makes the student's training
    split larger than the labelled rows, the baseline gets the student's number of optimizer steps (more epochs
    over fewer rows), so both take the same number of updates."""
    import dataclasses
    import math

    args = plan.baseline_args
    if len(baseline_rows) == len(distill_rows) or args.max_steps > 0:
        return args
    # the Trainer's own count for the student: update steps per epoch times epochs (fractional epochs round up)
    batches = math.ceil(len(distill_rows) / args.per_device_train_batch_size)
    steps_per_epoch = max(1, math.ceil(batches / args.gradient_accumulation_steps))
    return dataclasses.replace(args, max_steps=math.ceil(steps_per_epoch * args.num_train_epochs))
