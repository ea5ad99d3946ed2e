"""A recipe data section for a ``--data`` argument of a command (evaluate): the labelled-data loaders of the tasks
read a :class:`~hf_spectralkd.recipes.DataSection`, a command builds one from its options here."""

from __future__ import annotations

import os

__all__ = ["data_section"]


def data_section(source: str, split: str, **options):
    """A ``DataSection`` reading ``split`` from ``source``: a file is that split's file, a directory (train /
    validation / test files, or an imagefolder) or a Hub id is ``data.source``; ``options`` are other fields."""
    from ..recipes import DataSection

    section = DataSection(**options)
    expanded = os.path.expanduser(source)
    if os.path.isfile(expanded):
        setattr(section, f"{split}_file", os.path.abspath(expanded))
    elif not os.path.exists(expanded) and source.startswith((".", "/", "~")):
        raise ValueError(f"--data {source!r} does not exist")
    else:
        section.source = os.path.abspath(expanded) if os.path.exists(expanded) else source
    return section
