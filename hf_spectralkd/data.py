"""Old home of the text data loaders, kept importable: they now live in :mod:`hf_spectralkd.tasks.text.data`,
:mod:`hf_spectralkd.tasks.text.processing` and :mod:`hf_spectralkd.tasks.sources`."""

from __future__ import annotations

from .tasks.sources import BUILDERS, SPLITS, read_data_file
from .tasks.text.data import is_local_source, load_text_data
from .tasks.text.processing import text_collator, tokenize_splits

__all__ = ["load_text_data", "read_data_file", "tokenize_splits", "text_collator", "is_local_source", "SPLITS",
           "BUILDERS"]
