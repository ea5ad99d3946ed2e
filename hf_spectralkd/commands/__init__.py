"""Sub-commands of ``hf-spectralkd`` (one module each, see ``hf_spectralkd/cli.py``)."""

from __future__ import annotations

import os


def check_at_least_one(args, *names: str) -> None:
    """Each option ``--<name>`` that was given (not None) is an integer >= 1: checked before any work."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def check_output_dir(path: str, option: str = "--output") -> str:
    """``path`` usable as an output directory (absent, or an existing directory): checked before any work."""
    expanded = os.path.expanduser(path)
    if os.path.exists(expanded) and not os.path.isdir(expanded):
        raise ValueError(f"{option} {path!r} is an existing file, not a directory: pass a directory to write into")
    return expanded


def read_layer_map(option: str, path: str):
    """The :class:`~hf_spectralkd.distillation_trainer.LayerMap` in ``path`` (a layer_map.json file or a directory
    holding one), its two layer lists checked to be of equal length."""
    from ..constants import LAYER_MAP_FILENAME
    from ..distillation_trainer import LayerMap
    from ..utils import read_json

    file = os.path.join(path, LAYER_MAP_FILENAME) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"{option}: {path!r} is neither a layer_map.json file nor a directory holding one")
    data = read_json(file)
    try:
        layer_map = LayerMap(**{k: v for k, v in data.items() if k != "pairs"})
        layer_map.student_layers = [int(s) for s in layer_map.student_layers]
        layer_map.teacher_layers = [int(t) for t in layer_map.teacher_layers]
        if len(layer_map.student_layers) != len(layer_map.teacher_layers):
            raise ValueError("the lists differ in length")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{option}: {file} is not a layer map with student_layers/teacher_layers lists of equal "
                         f"length ({exc})") from exc
    return layer_map
