"""Transformers sequence classifiers for the text task: loading, label checks and students built from the teacher."""

from __future__ import annotations

import copy

from ...adapters import get_adapter
from ...adapters.hf import find_layer_list

__all__ = ["find_layer_list", "copy_teacher_layers", "label_maps", "check_labels", "build_text_student"]


def label_maps(label_names) -> tuple:
    """``(id2label, label2id)`` of ``label_names``."""
    return dict(enumerate(label_names)), {n: i for i, n in enumerate(label_names)}


def copy_teacher_layers(teacher, init_layers, config_overrides=None):
    """A student of the teacher's class with ``len(init_layers)`` blocks copied from the teacher.

    Embeddings, pooler and classifier are copied as they are; student block ``j`` is teacher block
    ``init_layers[j]`` (``hidden_states`` indexing: 1 = first block), as DistilBERT copied every other layer.
    The transformers adapter's :meth:`~hf_spectralkd.adapters.ModelAdapter.copy_blocks` does it.
    """
    return get_adapter(teacher).copy_blocks(teacher, init_layers, config_overrides)


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


def build_text_student(section, teacher, label_names, init_layers,
                       auto_class: str = "AutoModelForSequenceClassification"):
    """The student of ``student.init`` (``section``: the recipe's student section); ``auto_class``: the transformers
    auto class of the head (``AutoModelForTokenClassification`` for the token task)."""
    import transformers
    from transformers import AutoConfig

    from ...loading import load_classifier

    id2label, label2id = label_maps(label_names)
    if section.init == "teacher_layers":
        student = copy_teacher_layers(teacher, list(init_layers), section.config)
    elif section.init == "pretrained":
        student = load_classifier(
            section.model, what="student.model", auto_class=auto_class, num_labels=len(label_names),
            id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True,
        )
    else:  # a fresh model from the teacher's config with overrides
        config = copy.deepcopy(teacher.config)
        if section.num_layers is not None:
            config.num_hidden_layers = section.num_layers
        for key, value in section.config.items():
            setattr(config, key, value)
        student = getattr(transformers, auto_class).from_config(AutoConfig.for_model(**config.to_dict()))
    student.config.id2label, student.config.label2id = id2label, label2id
    return student
