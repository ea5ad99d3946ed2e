"""timm classifiers for the image task: references checked without building, models created or loaded from a
saved directory, students built from the teacher (copied blocks, a pretrained model or a fresh config)."""

from __future__ import annotations

import os

from ...adapters import get_adapter, unwrap_model
from ...utils import read_json
from .processing import DATA_CONFIG_FILENAME, DATA_CONFIG_KEYS

__all__ = ["is_timm_directory", "check_timm_reference", "create_timm_model", "label_config", "copy_timm_blocks",
           "build_image_student", "check_image_student", "match_normalisation"]


def is_timm_directory(path) -> bool:
    """Whether ``path`` holds a model saved in timm's format (``config.json`` with timm's ``architecture`` key, as
    ``timm``'s ``save_config_for_hf`` writes it; a transformers ``config.json`` has ``model_type`` instead)."""
    path = os.path.expanduser(str(path))
    if os.path.isfile(os.path.join(path, DATA_CONFIG_FILENAME)):
        return True
    config = read_json(os.path.join(path, "config.json"))
    return isinstance(config, dict) and "architecture" in config and "model_type" not in config


def check_timm_reference(name: str, what: str, pretrained: bool) -> bool:
    """Check a timm model reference without building it: True for a local directory; a timm name or ``hf-hub:`` id
    must exist and, when its pretrained weights are needed, the Hub must be reachable."""
    import timm

    from ...loading import is_offline

    path = os.path.expanduser(str(name))
    if os.path.isdir(path):
        return True
    if name.startswith(("./", "../", "/", "~")):
        raise ValueError(f"{what}: the directory {name!r} does not exist")
    if pretrained and is_offline():
        raise ValueError(
            f"{what}: {name!r} needs pretrained weights from the Hub, which is unreachable (HF_HUB_OFFLINE=1). "
            "Download them elsewhere (timm.create_model(name, pretrained=True) then save with hf_spectralkd's "
            "trainer or timm.models.save_for_hf) and give the local directory, or set pretrained: false"
        )
    base = name.split(":", 1)[-1].split("/")[-1] if name.startswith("hf-hub:") else name
    if not name.startswith("hf-hub:") and not timm.is_model(base):
        raise ValueError(f"{what}: {name!r} is not a timm model name (see timm.list_models()) nor a local directory")
    return False


def create_timm_model(name: str, what: str, pretrained: bool, **kwargs):
    import timm

    from ...adapters.timm import load_timm_model

    if check_timm_reference(name, what, pretrained):
        return load_timm_model(os.path.expanduser(str(name)), what=what, **kwargs)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{what}: timm.create_model({name!r}) rejected an argument: {exc}") from exc


def label_config(label_names) -> dict:
    """The ``pretrained_cfg`` entry that records a classifier's label names."""
    return {"label_names": list(label_names)}


def copy_timm_blocks(teacher, init_layers, overrides=None):
    """A student of the teacher's architecture with ``len(init_layers)`` blocks copied from the teacher
    (ViT / DeiT / CaiT: ``blocks.{j}`` <- ``blocks.{init_layers[j]-1}``; everything else copied as is): the timm
    adapter's :meth:`~hf_spectralkd.adapters.ModelAdapter.copy_blocks`."""
    return get_adapter(teacher).copy_blocks(teacher, init_layers, overrides)


def _fresh_student(section, teacher, label_names, overrides: dict):
    """A fresh model: ``student.config.architecture`` (default: the teacher's) with the given arguments."""
    data_cfg = {k: v for k, v in teacher.pretrained_cfg.items() if k in DATA_CONFIG_KEYS}
    architecture = overrides.pop("architecture", None)
    overrides.pop("pretrained", None)
    overlay = {**data_cfg, **dict(overrides.pop("pretrained_cfg_overlay", {}) or {}), **label_config(label_names)}
    if architecture is None or architecture == teacher.pretrained_cfg.get("architecture"):
        architecture = teacher.pretrained_cfg["architecture"]
        args = {k: v for k, v in (getattr(teacher, "_model_args", {}) or {}).items() if k != "num_classes"}
    elif "img_size" not in overrides:
        args = {"img_size": tuple(teacher.pretrained_cfg.get("input_size", (3, 224, 224))[1:])}
    else:
        args = {}
    args.update(overrides)
    if section.num_layers is not None:
        args["depth"] = section.num_layers
    return create_timm_model(architecture, "student", pretrained=False, num_classes=len(label_names),
                             pretrained_cfg_overlay=overlay, **args)


def build_image_student(section, teacher, label_names, init_layers):
    """The student of ``student.init`` (``section``: the recipe's student section), told to expect the teacher's
    normalisation."""
    teacher = unwrap_model(teacher, peft=True)
    overrides = dict(section.config or {})
    if section.init == "teacher_layers":
        student = copy_timm_blocks(teacher, list(init_layers), overrides)
    elif section.init == "pretrained":
        overrides.pop("pretrained", None)
        overlay = {**dict(overrides.pop("pretrained_cfg_overlay", {}) or {}), **label_config(label_names)}
        student = create_timm_model(section.model, "student.model", pretrained=True, num_classes=len(label_names),
                                    pretrained_cfg_overlay=overlay, **overrides)
    else:
        student = _fresh_student(section, teacher, label_names, overrides)
    match_normalisation(student, teacher)
    return student


def match_normalisation(student, teacher) -> None:
    """The pipeline prepares the pixels once, with the teacher's data config: a student from elsewhere
    (``init: pretrained``) is told to expect the same normalisation (recorded in its saved config)."""
    cfg = dict(student.pretrained_cfg)
    for key in ("mean", "std", "crop_pct", "interpolation", "crop_mode"):
        if key in teacher.pretrained_cfg:
            cfg[key] = teacher.pretrained_cfg[key]
    student.pretrained_cfg = cfg


def check_image_student(recipe, teacher_ref) -> None:
    """Before any work: a student built from the teacher (``student.init``: ``teacher_layers`` / ``config``) can be
    built with ``student.config``. The teacher's architecture and the student are created on the meta device (no
    weights, nothing downloaded), so that e.g. a changed ``embed_dim`` with copied blocks, or heads that do not
    divide the width, fail in ``--dry-run``, naming ``student.config``."""
    import timm
    import torch

    section = recipe.student
    if section.init not in ("teacher_layers", "config"):
        return
    kwargs = {k: v for k, v in dict(recipe.teacher.config or {}).items() if k != "pretrained"} \
        if recipe.teacher.base else {}
    path = os.path.expanduser(str(teacher_ref))
    name = f"local-dir:{os.path.abspath(path)}" if os.path.isdir(path) else str(teacher_ref)
    shown = ", ".join(f"{k}={v!r}" for k, v in dict(section.config or {}).items()) or "none"
    try:
        with torch.device("meta"):
            teacher = timm.create_model(name, pretrained=False, **kwargs)
    except Exception:  # noqa: BLE001 - e.g. an hf-hub: config offline: the teacher stage names it when it loads
        return
    try:
        with torch.device("meta"):
            layers = section.init_layers
            if section.init == "teacher_layers" and not isinstance(layers, list):
                blocks = len(getattr(teacher, "blocks", []))
                if section.num_layers is None or section.num_layers > blocks:
                    return  # the depth checks name this
                layers = list(range(1, section.num_layers + 1))  # only the shapes matter here
            build_image_student(section, teacher, ["a", "b"], layers)
    except (ValueError, TypeError, AttributeError, KeyError, RuntimeError, AssertionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if reason.startswith("student."):
            raise ValueError(reason) from None
        raise ValueError(
            f"student.config ({shown}): the student (student.init: {section.init}) cannot be built from the "
            f"teacher's architecture with these values: {reason}") from None
