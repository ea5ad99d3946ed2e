"""Trainer / TRL arguments of :class:`~hf_spectralkd.SpectralDistillationTrainer` that need more than passing on:
the ones the distillation loss replaces (refused at construction rather than silently ignored), the teacher given
as a config field (``teacher_model_name_or_path`` + ``teacher_model_init_kwargs``, as TRL) and ``peft_config=``."""

from __future__ import annotations

import dataclasses
import os

from .loading import load_classifier

__all__ = ["UNSUPPORTED_TRAINER_ARGUMENTS", "apply_peft_config", "check_student_trains", "check_trainer_arguments",
           "resolve_teacher"]

# Trainer arguments whose job the distillation loss does itself: passing one would be silently ignored
UNSUPPORTED_TRAINER_ARGUMENTS = {
    "compute_loss_func": "the loss is the distillation loss (1-alpha)*CE + alpha*KD + beta*L_freq; to change a term, "
    "subclass SpectralDistillationTrainer and override ce_loss, logit_kd_loss or alignment_loss",
}


def check_trainer_arguments(kwargs: dict, args) -> None:
    """Refuse, before any work, the ``Trainer`` / ``TrainingArguments`` settings the distillation loss would ignore."""
    for name, why in UNSUPPORTED_TRAINER_ARGUMENTS.items():
        if kwargs.get(name) is not None:
            raise ValueError(f"SpectralDistillationTrainer does not support {name}=: {why}")
    label_names = getattr(args, "label_names", None)
    if label_names is not None and list(label_names) not in (["labels"], ["start_positions", "end_positions"]):
        raise ValueError(
            f"label_names={label_names} is not supported: the distillation loss reads the labels from the `labels` "
            "column (`start_positions` / `end_positions` for extractive QA); rename your label column to `labels` "
            "(or leave label_names unset)"
        )


def check_student_trains(student, teacher) -> None:
    """Before any work: the student is not the teacher, has parameters to train, and shares none of them with the
    teacher (the teacher is frozen for distillation: a shared parameter would stop training without a word; all of
    them frozen and the first backward pass fails with "does not require grad")."""
    from .adapters.base import unwrap_model

    base = unwrap_model(student, peft=True)
    name = type(base).__name__
    if base is unwrap_model(teacher, peft=True):
        raise ValueError(
            f"the student (model=) and the teacher (teacher_model=) are the same {name} object: the teacher is frozen "
            "for distillation, so there would be nothing to train. Pass a separate student, e.g. "
            "hf_spectralkd.build_student(teacher, num_layers=...) or copy.deepcopy(teacher)"
        )
    parameters = list(student.named_parameters())
    if not any(p.requires_grad for _, p in parameters):
        raise ValueError(
            f"the student {name} has no parameter that requires grad ({len(parameters)} parameter tensors, all "
            "frozen): there is nothing to train. Unfreeze it (student.requires_grad_(True)) or train adapters "
            "(peft_config=)"
        )
    teacher_ids = {id(p) for p in teacher.parameters()}
    shared = [n for n, p in parameters if p.requires_grad and id(p) in teacher_ids]
    if shared:
        raise ValueError(
            f"the student {name} shares {len(shared)} trainable parameter tensor(s) with the teacher (e.g. "
            f"{shared[0]}): the teacher is frozen for distillation, so they would not train. Give the student its own "
            "weights (copy.deepcopy of the shared modules)"
        )


def _init_kwargs(args) -> dict:
    """``teacher_model_init_kwargs`` ready for ``from_pretrained``: a dtype named by a string becomes a torch dtype."""
    import torch

    kwargs = dict(args.teacher_model_init_kwargs or {})
    for key in ("dtype", "torch_dtype"):
        value = kwargs.get(key)
        if isinstance(value, str) and value != "auto":
            dtype = getattr(torch, value, None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"teacher_model_init_kwargs.{key}: {value!r} is not a torch dtype (e.g. 'bfloat16', "
                                 "'float16', 'float32' or 'auto')")
            kwargs[key] = dtype
    return kwargs


def resolve_teacher(teacher_model, args):
    """The teacher: ``teacher_model`` (a model, path or Hub id), else ``args.teacher_model_name_or_path``; a path or
    id is loaded with ``args.teacher_model_init_kwargs``. ``None`` when neither is given."""
    name = getattr(args, "teacher_model_name_or_path", None)
    if teacher_model is not None and name is not None:
        raise ValueError(
            "the teacher is given twice: as teacher_model= and as args.teacher_model_name_or_path; give one of them"
        )
    teacher_model = teacher_model if teacher_model is not None else name
    init_kwargs = getattr(args, "teacher_model_init_kwargs", None)
    if teacher_model is None:
        return None
    if init_kwargs and not isinstance(teacher_model, str):
        raise ValueError(
            "teacher_model_init_kwargs only apply when the teacher is loaded from a path or Hub id, but teacher_model "
            "is already a model: load it with those arguments yourself, or pass its path"
        )
    return load_model(teacher_model, what="teacher_model", **_init_kwargs(args))


def load_model(reference, what: str, auto_class: str | None = None, **kwargs):
    """A model given by path or Hub id, loaded with ``auto_class`` (the student: the teacher's head's), else with the
    auto class of its own head, read from its config's ``architectures`` (a fine-tuned token classifier loads as
    one; a base checkpoint as a sequence classifier with a fresh head, as before heads existed); a model object is
    returned as it is. ``kwargs`` go to ``from_pretrained`` (and the config lookup: revision, token, ...)."""
    if not isinstance(reference, (str, os.PathLike)):
        return reference
    from .adapters.hf import head_of_reference
    from .loading import resolve_model_reference

    if auto_class is None:
        config_keys = ("revision", "token", "trust_remote_code", "subfolder", "cache_dir")
        options = {k: v for k, v in kwargs.items() if k in config_keys}
        auto_class = head_of_reference(resolve_model_reference(os.fspath(reference), what), **options).auto_class
    return load_classifier(reference, what=what, auto_class=auto_class, **kwargs)


def apply_peft_config(model, peft_config):
    """``get_peft_model(model, peft_config)`` as TRL does for ``peft_config=``. For a transformers classifier an
    unset ``task_type`` becomes ``SEQ_CLS``, so PEFT also trains and saves the classification head."""
    if peft_config is None:
        return model
    if hasattr(model, "peft_config"):
        raise ValueError("peft_config= was given but the student is already a PEFT model: pass one or the other")
    from peft import PeftConfig, get_peft_model
    from transformers import PreTrainedModel

    if not isinstance(peft_config, PeftConfig):
        raise TypeError(f"peft_config must be a peft.PeftConfig (e.g. LoraConfig), got {type(peft_config).__name__}")
    if getattr(peft_config, "task_type", None) is None and isinstance(model, PreTrainedModel):
        from .adapters import get_adapter

        head = get_adapter(model).head(model)
        if head.peft_task_type is not None:  # SEQ_CLS, TOKEN_CLS, QUESTION_ANS, CAUSAL_LM
            peft_config = dataclasses.replace(peft_config, task_type=head.peft_task_type)
        elif head.name == "multiple-choice" and getattr(peft_config, "modules_to_save", None) is None \
                and hasattr(model, "classifier"):
            # PEFT has no multiple-choice task type: the choice head trains (and saves) as a module to save
            peft_config = dataclasses.replace(peft_config, modules_to_save=["classifier"])
    return get_peft_model(model, peft_config)
