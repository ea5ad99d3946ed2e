"""Transformers sequence classifiers for the text task: loading, label checks and students built from the teacher."""

from __future__ import annotations

import copy
import re

__all__ = ["find_layer_list", "copy_teacher_layers", "label_maps", "check_labels", "build_text_student"]


def label_maps(label_names) -> tuple:
    """``(id2label, label2id)`` of ``label_names``."""
    return dict(enumerate(label_names)), {n: i for i, n in enumerate(label_names)}


def find_layer_list(model):
    """``(prefix, ModuleList)`` of the transformer blocks (e.g. ``bert.encoder.layer``)."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n and n:
            if best is None or len(name) < len(best[0]):
                best = (name, module)
    if best is None:
        raise ValueError(
            f"cannot find the {n} transformer blocks of {type(model).__name__}; build the student with "
            "student.init: pretrained or config instead of teacher_layers"
        )
    return best


def copy_teacher_layers(teacher, init_layers, config_overrides=None):
    """A student of the teacher's class with ``len(init_layers)`` blocks copied from the teacher.

    Embeddings, pooler and classifier are copied as they are; student block ``j`` is teacher block
    ``init_layers[j]`` (``hidden_states`` indexing: 1 = first block), as DistilBERT copied every other layer.
    """
    n = teacher.config.num_hidden_layers
    bad = [i for i in init_layers if not 1 <= i <= n]
    if bad:
        raise ValueError(f"student.init_layers {bad} out of range: the teacher has {n} blocks, valid layers are "
                         f"1..{n}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(init_layers)
    for key, value in (config_overrides or {}).items():
        if key in ("hidden_size", "num_attention_heads", "intermediate_size") and value != getattr(config, key, None):
            raise ValueError(f"student.config.{key} cannot change when copying teacher layers (the weights must fit)")
        setattr(config, key, value)
    student = type(teacher)(config)
    prefix, _ = find_layer_list(teacher)
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    source = teacher.state_dict()
    target = {}
    for key in student.state_dict():
        match = pattern.match(key)
        teacher_key = f"{prefix}.{init_layers[int(match.group(1))] - 1}.{match.group(2)}" if match else key
        target[key] = source[teacher_key].clone()
    student.load_state_dict(target, strict=True)
    return student


def check_labels(model, label_names, what="model") -> None:
    """``model`` predicts ``label_names`` (a model with only ``LABEL_i`` names is given them)."""
    n = model.config.num_labels
    if n != len(label_names):
        raise ValueError(f"{what} predicts {n} classes but the data has {len(label_names)} labels")
    names = [model.config.id2label.get(i) for i in range(n)]
    if all(str(v).startswith("LABEL_") for v in names):
        model.config.id2label, model.config.label2id = label_maps(label_names)
    elif names != list(label_names):
        diff = [i for i in range(n) if names[i] != label_names[i]][:3]
        raise ValueError(
            f"{what}'s id2label differs from the data's labels (e.g. id {diff[0]}: model {names[diff[0]]!r}, data "
            f"{label_names[diff[0]]!r}); it was fine-tuned on another label set"
        )


def build_text_student(section, teacher, label_names, init_layers):
    """The student of ``student.init`` (``section``: the recipe's student section)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ...loading import load_classifier

    id2label, label2id = label_maps(label_names)
    if section.init == "teacher_layers":
        student = copy_teacher_layers(teacher, list(init_layers), section.config)
    elif section.init == "pretrained":
        student = load_classifier(
            section.model, what="student.model", num_labels=len(label_names), id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True,
        )
    else:  # a fresh model from the teacher's config with overrides
        config = copy.deepcopy(teacher.config)
        if section.num_layers is not None:
            config.num_hidden_layers = section.num_layers
        for key, value in section.config.items():
            setattr(config, key, value)
        student = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(**config.to_dict()))
    student.config.id2label, student.config.label2id = id2label, label2id
    return student
