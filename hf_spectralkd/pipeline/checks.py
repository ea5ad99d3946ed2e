"""Checks a recipe run makes before any work: each raises ``ValueError`` naming the recipe key to change."""

from __future__ import annotations

import os

from ..constants import MODEL_WEIGHT_FILES
from ..layer_map import LayerSelection, candidate_count, check_layer_arguments, selects_layers
from ..recipes import Recipe

__all__ = ["check_single_process", "check_output_dir", "check_depths", "check_teacher_cache", "check_hub",
           "student_depth", "check_training_budget"]


def check_single_process() -> None:
    """The pipeline's stages write shared folders: refuse a multi-process launch before any work."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        raise ValueError(
            f"hf-spectralkd distill runs its stages in one process, but it was launched in {world} "
            f"(WORLD_SIZE={world}). Run `hf-spectralkd distill --config ...` without accelerate launch / torchrun "
            "(the Trainer uses one GPU when there is one); for several GPUs, DeepSpeed or FSDP launch a script with "
            "SpectralDistillationTrainer: "
            "`accelerate launch --config_file recipes/accelerate/<config>.yaml your_script.py`"
        )


def check_output_dir(recipe: Recipe) -> str:
    """The run's output directory as an absolute path; it may not exist yet, but must not be a file."""
    out = os.path.abspath(recipe.output_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"output.dir {recipe.output_dir!r} is an existing file, not a directory: "
                         "set output.dir to a directory")
    return out


def student_depth(recipe: Recipe) -> int | None:
    """The student's number of blocks from the recipe (or a pretrained student's configuration), if known."""
    s = recipe.student
    if s.num_layers is not None:
        return s.num_layers
    if isinstance(s.init_layers, list):
        return len(s.init_layers)
    if s.init == "pretrained":
        try:
            from transformers import AutoConfig

            from ..loading import resolve_model_reference

            config = AutoConfig.from_pretrained(resolve_model_reference(s.model, "student.model"))
            return getattr(config, "num_hidden_layers", None)
        except Exception:
            return None
    return None


def check_depths(recipe: Recipe, teacher_depth: int, k_aligned: int | None) -> None:
    """Student depth, copied blocks and aligned-layer count against the teacher's depth, naming the recipe key."""
    s, d = recipe.student, recipe.distillation
    selection = LayerSelection.from_config(recipe)
    if s.init == "teacher_layers":
        if s.num_layers is not None and s.num_layers > teacher_depth:
            raise ValueError(f"student.num_layers={s.num_layers} but the teacher has only {teacher_depth} blocks to "
                             f"copy from (student.init: teacher_layers): use at most {teacher_depth}")
        if isinstance(s.init_layers, list):
            bad = [i for i in s.init_layers if not 1 <= i <= teacher_depth]
            if bad:
                raise ValueError(f"student.init_layers {bad} out of range: the teacher's blocks are "
                                 f"1..{teacher_depth}")
    if d.get("teacher_layers"):
        bad = [i for i in d["teacher_layers"] if not 0 <= i <= teacher_depth]
        if bad:
            raise ValueError(f"distillation.teacher_layers {bad} out of range: valid hidden_states indices for this "
                             f"teacher are 0..{teacher_depth} (0 = embeddings)")
    elif k_aligned and selects_layers(selection):
        candidates = candidate_count(selection, teacher_depth)
        if k_aligned > candidates:
            if d.get("num_aligned_layers"):
                what = f"distillation.num_aligned_layers={k_aligned}"
            elif s.num_layers is not None:
                what = f"student.num_layers={k_aligned}"
            else:
                what = f"the student's {k_aligned} layers"
            raise ValueError(f"{what}: cannot align {k_aligned} student layers with a teacher of {teacher_depth} "
                             f"blocks ({candidates} candidate layers); set distillation.num_aligned_layers <= "
                             f"{candidates}")
    depth = student_depth(recipe)
    if depth is None and s.init == "config":  # a student from the teacher's configuration keeps its depth
        depth = s.config.get("num_hidden_layers", teacher_depth)
    if isinstance(depth, int) and depth >= 1:  # the trainer's own check, before any stage ran
        try:
            check_layer_arguments(selection, depth, teacher_depth)
        except ValueError as exc:
            message = str(exc)
            if message.startswith(("student_layers", "teacher_layers", "num_aligned_layers")):
                message = f"distillation.{message}"
            raise ValueError(message) from None


def check_training_budget(recipe: Recipe, built: dict) -> None:
    """Every training stage takes at least one optimizer step: ``num_train_epochs <= 0`` without ``max_steps``
    trains nothing (the Trainer runs 0 steps and the untrained model would be saved, evaluated and carded). Any
    positive epoch count or ``max_steps >= 1`` takes a step (the Trainer rounds the steps up)."""
    stages = [("training", built.get("distill_args"), "num_train_epochs")]
    if built.get("teacher_args") is not None:
        stages.append(("teacher.finetune", built["teacher_args"], "epochs"))
    for section, args, epochs_key in stages:
        if args is None or args.max_steps > 0 or args.num_train_epochs > 0:
            continue
        raise ValueError(
            f"{section}.{epochs_key}={args.num_train_epochs:g} (and no {section}.max_steps): the "
            f"{'teacher fine-tuning' if section != 'training' else 'student and the baseline'} would take 0 optimizer "
            f"steps and the untrained model would be evaluated and carded as trained. Set {section}.{epochs_key} > 0 "
            f"or {section}.max_steps >= 1"
        )


def check_teacher_cache(recipe: Recipe) -> None:
    """``teacher.cache`` needs fixed inputs (text) and, with an alignment term (beta > 0), layers to store; with
    ``distillation.beta: 0`` (logit KD) it stores the teacher's logits only."""
    if not recipe.teacher.cache:
        return
    if recipe.task not in ("text-classification", "token-classification"):
        raise ValueError(f"teacher.cache: the teacher cache needs fixed, tokenized inputs (text- or token-"
                         f"classification); the {recipe.task} pipeline transforms its inputs on the fly. Set "
                         "teacher.cache: false")
    manual = recipe.distillation_value("layer_selection") == "manual"
    if recipe.distillation_value("beta") != 0 and manual and not recipe.distillation.get("teacher_layers"):
        raise ValueError("teacher.cache stores the aligned layers' hidden states, and distillation.layer_selection: "
                         "manual names no distillation.teacher_layers: set distillation.teacher_layers (or "
                         "distillation.beta: 0 to cache the teacher's logits only), or set teacher.cache: false")


def check_hub(recipe: Recipe, out: str) -> None:
    """A push at the end of the run needs the Hub: refuse before any work when it is unreachable."""
    from ..loading import is_offline

    if recipe.hub.push_to_hub and is_offline():
        raise ValueError(
            "hub.push_to_hub is set but the Hub is unreachable (HF_HUB_OFFLINE=1): run with hub.push_to_hub=false and "
            f"push later with `hf-spectralkd push --model-dir {out} --repo-id {recipe.hub.hub_model_id}` where the "
            "Hub is reachable"
        )


def check_model_dir(location: str, what: str) -> None:
    """A local folder named as a model holds a configuration and weights; say what is missing (a Hub id passes)."""
    if not os.path.isdir(location):
        return
    names = sorted(os.listdir(location))
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else "nothing"
    if "config.json" not in names:
        raise ValueError(f"{what}: {location} is not a model directory: it has no config.json (it holds {shown}); "
                         "point it at a folder written by save_pretrained")
    if not any(name in MODEL_WEIGHT_FILES or name.endswith(".safetensors") for name in names):
        raise ValueError(f"{what}: {location} is not a model directory: it has a config.json but no weights "
                         f"(model.safetensors or pytorch_model.bin; it holds {shown})")
    from ..loading import check_pickle_weights

    check_pickle_weights(location, what)  # a pickle that holds more than tensors: refused, with how to convert it
