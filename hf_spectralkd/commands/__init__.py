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
    """The :class:`~hf_spectralkd.layer_map.LayerMap` in ``path`` (a layer_map.json file or a directory holding
    one), its two layer lists checked to be of equal length; errors name ``option``."""
    from ..constants import LAYER_MAP_FILENAME
    from ..layer_map import LayerMap

    file = os.path.join(path, LAYER_MAP_FILENAME) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"{option}: {path!r} is neither a layer_map.json file nor a directory holding one")
    try:
        return LayerMap.load(file)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from exc
