"""The run plan: a recipe resolved once, before any work, into everything the stages read.

:func:`preflight` makes every check that can run before a stage starts (model references, depths and layer
indices, data, every TrainingArguments / SpectralKD value, ``student.peft``, ``teacher.cache``, the Hub) and
returns a frozen :class:`RunPlan`: the task, the absolute output directory, the loaded data, the built
arguments of the teacher fine-tuning, the distillation and the no-KD baseline, and the fingerprints of each
stage's inputs. Nothing changes the plan after preflight: the student's init layers, which depend on the
teacher's spectral profile, are what the analysis stage returns; the student's and the baseline's fingerprints
name what decides them (the profile's fingerprint and the recipe's rule, ``student.init_layers``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from ..layer_map import LayerSelection, aligned_count
from ..numbers import check_training_arguments
from ..recipes import Recipe
from ..utils import file_digest, hash_object
from .checks import (
    check_depths,
    check_hub,
    check_model_dir,
    check_output_dir,
    check_single_process,
    check_teacher_cache,
    check_training_budget,
    student_depth,
)
from .runner import stage_tmp_dir
from .state import check_stage_folders, model_content_fingerprint

__all__ = ["RunPlan", "Fingerprints", "preflight", "student_training_values", "teacher_training_args",
           "distillation_args", "baseline_args", "pin_memory", "candidate_name"]

EVAL_BATCH_SIZE = 128
# every Trainer the pipeline builds starts from these (a recipe's training: section overrides any of them)
# checkpoints: the last one of a training stage is kept in <out>/.<stage>.tmp while it runs, so that a killed run
# resumes from it (run_stage removes them once the stage completes)
COMMON_TRAINING_DEFAULTS = dict(report_to="none", save_strategy="steps", save_steps=500, save_total_limit=1,
                                logging_steps=50, per_device_eval_batch_size=EVAL_BATCH_SIZE,
                                dataloader_num_workers=0)
# the distilled student and the no-KD baseline (same budget): the pipeline's choices where TrainingArguments differ
STUDENT_TRAINING_DEFAULTS = dict(eval_strategy="epoch", learning_rate=1e-4, num_train_epochs=2,
                                 per_device_train_batch_size=32, seed=42)
# the data files whose bytes are part of the data fingerprint
DATA_FILE_KEYS = ("train_file", "validation_file", "test_file", "source")
TEACHER_TRAINER_DIRNAME = "_trainer"  # the teacher fine-tuning's scratch folder, removed when it completes


# ---------------------------------------------------------------------------------------------- arguments
def pin_memory() -> bool:
    """Pinned memory only helps host->GPU copies; on a CPU-only machine torch warns at every DataLoader."""
    import torch

    return torch.cuda.is_available()


def _common_values(recipe: Recipe) -> dict:
    values = dict(COMMON_TRAINING_DEFAULTS, dataloader_pin_memory=pin_memory())
    if recipe.evaluation.batch_size:
        values["per_device_eval_batch_size"] = recipe.evaluation.batch_size
    return values


def teacher_training_args(recipe: Recipe, output_dir: str, task):
    """TrainingArguments of the teacher fine-tuning (``teacher.finetune``)."""
    from transformers import TrainingArguments

    ft = recipe.teacher.finetune
    values = dict(_common_values(recipe), eval_strategy="no", num_train_epochs=ft.epochs,
                  learning_rate=ft.learning_rate, per_device_train_batch_size=ft.batch_size,
                  weight_decay=ft.weight_decay, warmup_steps=ft.warmup_steps, max_steps=ft.max_steps,
                  gradient_accumulation_steps=ft.gradient_accumulation_steps, seed=ft.seed)
    if ft.select_best:  # the epoch count is a budget: evaluate each epoch, keep the best (see stages.teacher_trainer)
        values.update(eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                      metric_for_best_model=task.primary_metric, greater_is_better=True, save_total_limit=1)
    values.update(ft.args)
    values.update(task.training_overrides(recipe))
    return TrainingArguments(output_dir=output_dir, **values)


def student_training_values(recipe: Recipe, task) -> dict:
    """TrainingArguments values of the student and the baseline: pipeline defaults < ``training:`` < the task's."""
    values = dict(_common_values(recipe), **STUDENT_TRAINING_DEFAULTS)
    values.update(recipe.training)
    values.update(task.training_overrides(recipe))
    return values


def distillation_args(recipe: Recipe, output_dir: str, values: dict, overrides: dict | None = None):
    """The student's SpectralDistillationConfig: the training values, the recipe's ``distillation`` section and a
    candidate's ``overrides`` of it (``distillation.candidates``)."""
    from ..distillation_config import SpectralDistillationConfig

    return SpectralDistillationConfig(output_dir=output_dir, **values, **{**recipe.distillation, **(overrides or {})})


def candidate_name(index: int, overrides: dict) -> str:
    """A candidate's label in logs, results.json and the card: ``c1 (beta=0, alignment=mse)``; ``{}`` is the
    recipe's own distillation section."""
    settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in overrides.items())
    settings = settings or "the recipe's distillation settings"
    return f"c{index + 1} ({settings})"


def baseline_args(output_dir: str, values: dict):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=output_dir, **values)


def _build_arguments(recipe: Recipe, out: str, task) -> dict:
    """Every TrainingArguments object of the run, built once (a bad value raises ``ValueError`` naming the section)."""
    values = student_training_values(recipe, task)
    built = {"training_values": values, "teacher_args": None, "baseline_args": None}
    try:  # the argument builders raise ValueError for a bad value and create nothing
        built["distill_args"] = distillation_args(recipe, stage_tmp_dir(out, "student"), values)
        built["candidate_args"] = ()
        for index, overrides in enumerate(recipe.candidates):
            try:
                candidate = distillation_args(recipe, stage_tmp_dir(out, "student"), values, overrides)
            except ValueError as exc:
                raise ValueError(f"distillation.candidates[{index}]: {exc}") from None
            built["candidate_args"] += ((overrides, candidate),)
        if recipe.evaluation.baseline:
            built["baseline_args"] = baseline_args(stage_tmp_dir(out, "baseline"), values)
            check_training_arguments(built["baseline_args"])
    except ValueError as exc:
        hint = (" (this machine has no GPU for bf16/fp16: add the override training.bf16=false / training.fp16=false)"
                if "bf16" in str(exc) or "fp16" in str(exc) else "")
        raise ValueError(f"invalid setting in the recipe's distillation/training sections: {exc}{hint}") from exc
    if recipe.teacher.base:
        scratch = os.path.join(stage_tmp_dir(out, "teacher"), TEACHER_TRAINER_DIRNAME)
        try:
            built["teacher_args"] = teacher_training_args(recipe, scratch, task)
            check_training_arguments(built["teacher_args"])
        except ValueError as exc:
            raise ValueError(f"invalid setting in teacher.finetune: {exc}") from exc
    check_training_budget(recipe, built)  # 0 optimizer steps would card an untrained model
    return built


# ---------------------------------------------------------------------------------------------- fingerprints
def data_fingerprint(recipe: Recipe) -> dict:
    """The data section plus a digest of every local data file (a changed file re-runs what read it)."""
    section = dataclasses.asdict(recipe.data)
    files = {}
    transfer = section.get("transfer") or {}
    paths = {key: section.get(key) for key in DATA_FILE_KEYS}
    paths["transfer.source"] = transfer.get("source") if isinstance(transfer, dict) else None  # unlabelled rows
    for key, path in paths.items():
        if path and os.path.isfile(path):
            files[key] = file_digest(path)
        elif path and os.path.isdir(path):
            files[key] = {name: file_digest(os.path.join(path, name)) for name in sorted(os.listdir(path))
                          if os.path.isfile(os.path.join(path, name))}
    return {"data": section, "files": files}


@dataclass(frozen=True)
class Fingerprints:
    """Hashes of each stage's inputs: a stage whose fingerprint changed runs again."""

    data: dict
    teacher_inputs: dict  # what the teacher stage's fingerprint.json records
    teacher: str
    profile: str  # what downstream stages depend on: the teacher's profile, not the selection settings
    analysis: str  # the profile plus the selection settings (the stage's graph highlights the selected layers)
    student: str
    baseline: str


def _fingerprints(recipe: Recipe, label_names: list, distill_args, k_aligned: int | None,
                  teacher_ref: str, task) -> Fingerprints:
    data_fp = data_fingerprint(recipe)
    # a given model is fingerprinted by its files' content (sizes, mtimes, safetensors headers), not its path
    content = model_content_fingerprint(teacher_ref)
    if recipe.teacher.base:
        inputs = {"base": recipe.teacher.base, "finetune": dataclasses.asdict(recipe.teacher.finetune),
                  "data": data_fp, "labels": label_names, "task": recipe.task, "smoke": recipe.smoke,
                  "base_content": content}
    else:
        inputs = {"model": recipe.teacher.model, "labels": label_names, "content": content}
    teacher_fp = hash_object(inputs)
    # the analysis reads the seeded sample the trainer's own automatic selection would read
    profile_fp = hash_object({"teacher": teacher_fp, "samples": distill_args.selection_samples, "data": data_fp,
                              "seed": distill_args.seed, "sampling": "seeded-random"})
    selection = {f.name: recipe.distillation.get(f.name) for f in dataclasses.fields(LayerSelection)}
    analysis_fp = hash_object({"profile": profile_fp, "selection": selection, "k": k_aligned})
    student_fp, baseline_fp = _student_fingerprints(recipe, teacher_fp, profile_fp, selection, task)
    return Fingerprints(data_fp, inputs, teacher_fp, profile_fp, analysis_fp, student_fp, baseline_fp)


def _student_fingerprints(recipe: Recipe, teacher_fp: str, profile_fp: str, selection: dict, task) -> tuple:
    """The student's and the baseline's fingerprints. Their init layers follow from the teacher's profile and the
    recipe's rule (``student.init_layers``; ``"selected"`` also reads the distillation's selection settings)."""
    student = recipe.student
    inputs = {"teacher": teacher_fp, "analysis": profile_fp, "student": dataclasses.asdict(student),
              "training": recipe.training, "smoke": recipe.smoke}
    if student.init == "teacher_layers" and student.init_layers == "selected":
        inputs["selection"] = selection
    if student.init == "pretrained":  # a pretrained student is fingerprinted by its files, too
        inputs["student_content"] = model_content_fingerprint(task.resolve_reference(student.model, "student.model"))
    student_fp = hash_object({**inputs, "distillation": recipe.distillation,
                              **({"teacher_cache": True} if recipe.teacher.cache else {}),
                              **({"candidates": recipe.candidates} if recipe.candidates else {})})
    return student_fp, hash_object({**inputs, "baseline": True})


# ---------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class RunPlan:
    """Everything a run's stages read, resolved once by :func:`preflight`."""

    recipe: Recipe
    task: Any
    out: str  # absolute output directory
    teacher_ref: str  # the teacher (base) reference, resolved
    data: Any  # TaskData: raw splits, label names, dataset facts
    processor: Any
    training_values: dict  # the student's / baseline's TrainingArguments values
    distill_args: Any  # SpectralDistillationConfig of the student stage
    # distillation.candidates: (overrides, SpectralDistillationConfig) of each candidate student; () for one student
    candidate_args: tuple
    baseline_args: Any  # TrainingArguments of the baseline stage (None without evaluation.baseline)
    teacher_args: Any  # TrainingArguments of the teacher fine-tuning (None for teacher.model)
    aligned_layers: int | None  # how many layer pairs are aligned (None until the student's depth is known)
    fingerprints: Fingerprints

    @property
    def label_names(self) -> list:
        return self.data.label_names

    @property
    def eval_split(self) -> str:
        return self.recipe.evaluation.split

    @property
    def eval_batch_size(self) -> int:
        return self.recipe.evaluation.batch_size or self.training_values["per_device_eval_batch_size"]

    def stage_dir(self, name: str) -> str:
        return os.path.join(self.out, name)


def _check_candidate_layers(candidates, s_depth: int | None, t_depth: int | None) -> None:
    """Each candidate's layer settings fit the models, when both depths are known before any work."""
    if not s_depth or not t_depth:
        return
    from ..layer_map import check_layer_arguments

    for index, (_, args) in enumerate(candidates):
        try:
            check_layer_arguments(LayerSelection.from_config(args), s_depth, t_depth)
        except ValueError as exc:
            raise ValueError(f"distillation.candidates[{index}]: {exc}") from None


def preflight(recipe: Recipe) -> RunPlan:
    """Every check of ``recipe`` that can run before any work, in the order the stages need them, and the
    resolved :class:`RunPlan`. Writes nothing; raises ``ValueError`` naming the recipe key. Used by
    :func:`~hf_spectralkd.pipeline.run_pipeline` and by ``hf-spectralkd distill --dry-run``."""
    from ..tasks import get_task

    check_single_process()
    task = get_task(recipe.task)
    out = check_output_dir(recipe)
    check_stage_folders(out)
    teacher_what = "teacher.base" if recipe.teacher.base else "teacher.model"
    teacher_ref = task.resolve_reference(recipe.teacher.base or recipe.teacher.model, teacher_what)
    check_model_dir(teacher_ref, teacher_what)
    if recipe.student.init == "pretrained":
        check_model_dir(task.resolve_reference(recipe.student.model, "student.model"), "student.model")
    task.check_references(recipe, teacher_ref)
    k_aligned = aligned_count(LayerSelection.from_config(recipe), student_depth(recipe))
    teacher_depth = task.reference_depth(recipe, teacher_ref)
    if teacher_depth is not None:
        check_depths(recipe, teacher_depth, k_aligned)
    data = task.follow_teacher_labels(recipe, teacher_ref, task.load_data(recipe))  # a permuted id2label: by name
    processor = task.load_processor(recipe, teacher_ref)
    built = _build_arguments(recipe, out, task)
    _check_candidate_layers(built["candidate_args"], student_depth(recipe), teacher_depth)
    if recipe.student.peft:
        from ..peft_students import lora_config

        lora_config(recipe.student.peft)  # a bad student.peft field fails here, before any work
    check_teacher_cache(recipe)
    check_hub(recipe, out)
    fingerprints = _fingerprints(recipe, data.label_names, built["distill_args"], k_aligned, teacher_ref, task)
    return RunPlan(recipe=recipe, task=task, out=out, teacher_ref=teacher_ref, data=data, processor=processor,
                   aligned_layers=k_aligned, fingerprints=fingerprints, **built)
