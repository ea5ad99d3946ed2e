"""PEFT (LoRA) students for the recipe pipeline: the recipe's ``student.peft`` section.

``student.peft`` holds ``peft.LoraConfig`` fields, e.g. ``{r: 8, lora_alpha: 16, target_modules: [query, value]}``.
For transformers classifiers ``task_type`` defaults to ``SEQ_CLS`` (PEFT then also trains the classifier head).
With the Trainer API you need none of this: pass ``get_peft_model(student, LoraConfig(...))`` as ``model=``.
"""

from __future__ import annotations

import os

from .constants import ADAPTER_DIRNAME, PEFT_BASE_DIRNAME
from .utils import read_json, write_json

__all__ = ["apply_peft", "lora_config", "save_peft_base", "save_peft_student"]

_WHERE = "student.peft"


def lora_config(spec: dict, model=None):
    """``peft.LoraConfig`` from a recipe's ``student.peft`` mapping (clear ``ValueError`` for a bad field)."""
    from peft import LoraConfig

    if not isinstance(spec, dict) or not spec:
        raise ValueError(
            f"{_WHERE} must be a mapping of LoraConfig fields (e.g. r: 8, target_modules: [query, value]), "
            f"got {spec!r}"
        )
    values = dict(spec)
    if "task_type" not in values and (model is None or _is_transformers(model)):
        values["task_type"] = "SEQ_CLS"
    try:
        return LoraConfig(**values)
    except TypeError as exc:
        import dataclasses

        valid = sorted(f.name for f in dataclasses.fields(LoraConfig) if not f.name.startswith("_"))
        raise ValueError(f"{_WHERE}: {exc}; valid keys are LoraConfig fields: {', '.join(valid)}") from None
    except ValueError as exc:
        raise ValueError(f"{_WHERE}: {exc}") from None


def _is_transformers(model) -> bool:
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def apply_peft(model, spec: dict):
    """Wrap ``model`` with LoRA adapters as described by ``spec`` (only adapters + classifier stay trainable)."""
    from peft import get_peft_model

    config = lora_config(spec, model)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        names = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name})[:30]
        raise ValueError(f"{_WHERE}: {exc}. Module names in this student include: {', '.join(names)}") from None


def save_peft_base(model, adapter_dir: str, final_adapter_dir: str | None = None) -> str | None:
    """Save the base model a PEFT ``model`` wraps into ``<adapter_dir>/base_model/`` and point the adapter there.

    A student built from the teacher (blocks copied, or ``num_hidden_layers=3``) still carries the teacher's
    ``name_or_path``, so the adapter config PEFT writes names the *teacher*: reloaded through
    ``AutoPeftModelForSequenceClassification`` the adapter would land on the wrong model. The base saved here is the
    student without its adapters (LoRA leaves the base weights frozen), and ``base_model_name_or_path`` becomes its
    absolute path (under ``final_adapter_dir`` when the folder is written elsewhere and renamed later, as the
    pipeline's stages are). Returns that path, or None for a base that has no ``save_pretrained`` (timm)."""
    import copy

    base = copy.deepcopy(model).unload()  # a copy: the trained PEFT model stays wrapped
    if not hasattr(base, "save_pretrained"):
        return None
    base.save_pretrained(os.path.join(adapter_dir, PEFT_BASE_DIRNAME))
    base_dir = os.path.abspath(os.path.join(final_adapter_dir or adapter_dir, PEFT_BASE_DIRNAME))
    config_path = os.path.join(adapter_dir, "adapter_config.json")
    config = read_json(config_path)
    if isinstance(config, dict):
        write_json(config_path, {**config, "base_model_name_or_path": base_dir}, indent=2)
    return base_dir


def save_peft_student(trainer, directory: str, final_directory: str | None = None) -> None:
    """Save a trained PEFT student for the pipeline.

    ``<directory>/adapter/`` gets the PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``) and
    the base it reloads onto (``adapter/base_model/``, see :func:`save_peft_base`);
    ``<directory>/`` gets the adapter merged into the base weights as an ordinary model, so evaluation, the
    model card and the Hub push read it like any other student. ``layer_map.json`` goes to both.
    """
    from .adapters import unwrap_model

    model = unwrap_model(trainer.model)  # keeps the PEFT wrapper: merge_and_unload is its method
    if not hasattr(model, "merge_and_unload"):
        raise TypeError(f"save_peft_student expects a PEFT model, got {type(model).__name__}")
    if not trainer.args.should_save:
        return
    adapter_dir = os.path.join(directory, ADAPTER_DIRNAME)
    model.save_pretrained(adapter_dir)
    save_peft_base(model, adapter_dir, os.path.join(final_directory, ADAPTER_DIRNAME) if final_directory else None)
    layer_map = getattr(trainer, "layer_map", None)
    merged = model.merge_and_unload()
    merged.save_pretrained(directory)
    if layer_map is not None:
        layer_map.save(directory)
        layer_map.save(adapter_dir)
