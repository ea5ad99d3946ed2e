"""Text-task checks of the models a recipe names, before any work: the sequence length fits the models'
positions, the student's vocabulary covers the teacher's tokenizer, and a pretrained student's own tokenizer is
the teacher's (the pipeline feeds both models the teacher's token ids: a different tokenizer with the same
vocabulary size would silently give the student wrong tokens)."""

from __future__ import annotations

__all__ = ["check_student_config", "check_text_models"]

OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer")


def _config(reference: str, what: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(reference)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what}: could not read the model configuration of {reference!r}: "
                         f"{str(exc).splitlines()[0]}") from exc


def _check_positions(config, max_length: int, what: str) -> None:
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        return
    usable = positions
    if getattr(config, "model_type", "") in OFFSET_POSITIONS:  # positions start after padding_idx
        usable -= (getattr(config, "pad_token_id", None) or 0) + 1
    if max_length > usable:
        raise ValueError(f"data.max_length={max_length} but {what} has {usable} positions "
                         f"(max_position_embeddings={positions}): set data.max_length <= {usable}")


def _check_student_tokenizer(student_ref: str, teacher_tokenizer) -> None:
    from transformers import AutoTokenizer

    try:
        own = AutoTokenizer.from_pretrained(student_ref)
    except (OSError, ValueError):
        return  # a student without a tokenizer of its own is given the teacher's, which is what it was trained with
    if own.get_vocab() == teacher_tokenizer.get_vocab():
        return
    mine, theirs = own.get_vocab(), teacher_tokenizer.get_vocab()
    example = next((t for t in sorted(theirs) if mine.get(t) != theirs[t]), None)
    detail = (f"e.g. token {example!r} is id {theirs[example]} for the teacher and {mine.get(example)} for the student"
              if example is not None else f"{len(mine)} vs {len(theirs)} tokens")
    raise ValueError(
        f"student.model {student_ref!r} has its own tokenizer, which differs from the teacher's ({detail}); the "
        "pipeline feeds both models the teacher's token ids, so this student would read wrong tokens. Use a student "
        "that shares the teacher's tokenizer, or student.init: teacher_layers / config"
    )


def check_student_config(section, teacher_config, auto_class: str = "AutoModelForSequenceClassification") -> None:
    """A student built from the teacher (``student.init``: ``teacher_layers`` / ``config``; ``section``: the recipe's
    student section) can be built: copied blocks keep the teacher's widths, and the configuration the builder makes
    (:func:`~.models.build_text_student`) gives a model, built here on the meta device (no weights), so that e.g.
    attention heads that do not divide the hidden size fail before any work, naming ``student.config``."""
    import copy

    import torch
    import transformers
    from transformers import AutoConfig

    from ...adapters.hf import WIDTH_KEYS

    if section.init not in ("teacher_layers", "config"):
        return
    overrides = dict(section.config or {})
    config = copy.deepcopy(teacher_config)
    if section.init == "teacher_layers":
        for key in WIDTH_KEYS:
            if key in overrides and overrides[key] != getattr(config, key, None):
                raise ValueError(
                    f"student.config.{key}={overrides[key]!r}: student.init teacher_layers copies the teacher's "
                    f"blocks, whose {key} is {getattr(config, key, None)!r}, so it cannot change (the weights must "
                    "fit). Remove it, or build a fresh student with student.init: config"
                )
        layers = section.init_layers
        depth = len(layers) if isinstance(layers, list) else section.num_layers
    else:
        depth = section.num_layers
    if depth is not None:
        config.num_hidden_layers = depth
    for key, value in overrides.items():
        setattr(config, key, value)
    shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "none"
    try:
        if section.init == "config":
            config = AutoConfig.for_model(**config.to_dict())
        with torch.device("meta"):
            getattr(transformers, auto_class).from_config(config)
    except (ValueError, TypeError, AttributeError, KeyError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"student.config ({shown}): the student (student.init: {section.init}) cannot be built from the "
            f"teacher's configuration with these values: {reason}"
        ) from None


def check_text_models(recipe, teacher_ref: str, student_ref, teacher_tokenizer,
                      auto_class: str = "AutoModelForSequenceClassification") -> None:
    """``data.max_length`` within both models' positions, a student built from the teacher can be built
    (:func:`check_student_config`), the student's vocabulary covers the teacher tokenizer's ids, and a pretrained
    student's tokenizer is the teacher's (each a ``ValueError`` naming the recipe key)."""
    max_length = recipe.data.max_length
    what = "teacher.base" if recipe.teacher.base else "teacher.model"
    teacher_config = _config(teacher_ref, what)
    _check_positions(teacher_config, max_length, f"the teacher ({what})")
    check_student_config(recipe.student, teacher_config, auto_class)
    if student_ref is None:
        return
    student_config = _config(student_ref, "student.model")
    _check_positions(student_config, max_length, "the student (student.model)")
    vocab = getattr(student_config, "vocab_size", None)
    if vocab is not None and len(teacher_tokenizer) > vocab:
        raise ValueError(
            f"student.model {student_ref!r} has a vocabulary of {vocab} tokens but the teacher's tokenizer has "
            f"{len(teacher_tokenizer)}: token ids above {vocab - 1} would not exist in the student. Use a student "
            "with the teacher's vocabulary")
    _check_student_tokenizer(student_ref, teacher_tokenizer)
