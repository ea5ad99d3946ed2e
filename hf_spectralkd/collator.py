"""The data collator of :class:`~hf_spectralkd.SpectralDistillationTrainer`: the student's inputs plus the
distillation columns, and the teacher cache's example ids apart from the model inputs.

``Trainer`` keeps only the arguments of ``model.forward`` (and ``label_names``) when ``remove_unused_columns`` is
on, which would drop what the distillation loss reads besides the model inputs: the head's label columns of a
model whose forward takes none, the token tasks' ``kd_mask`` and the example-id column the teacher cache finds
its rows by. So the trainer removes the unused columns itself, in this collator, as TRL's trainers do with their
own collators (``GKDTrainer`` sets ``remove_unused_columns=False`` and lets ``DataCollatorForChatML`` pick the
columns); the column list is the one ``Trainer`` keeps, plus those columns.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping

import torch

from .adapters import unwrap_model
from .constants import EXAMPLE_ID_KEY, KD_MASK_COLUMN

__all__ = ["DistillationDataCollator", "model_columns"]

logger = logging.getLogger(__name__)


def model_columns(model, label_names=()) -> tuple:
    """The feature keys kept with ``remove_unused_columns=True``: the arguments of ``model.forward`` (the base model's
    under PEFT), ``label`` / ``label_ids`` and ``label_names`` (as ``Trainer`` keeps them) and ``kd_mask``."""
    forward = inspect.signature(unwrap_model(model, peft=True).forward).parameters
    return tuple(dict.fromkeys([*forward, "label", "label_ids", *label_names, KD_MASK_COLUMN]))


class DistillationDataCollator:
    """Wraps ``data_collator`` (attributes it does not have, such as ``tokenizer``, are the wrapped collator's).

    Args:
        data_collator: the collator of the model inputs (``DataCollatorWithPadding``, a task's collator, ...).
        keep (*optional*): the feature keys kept (see :func:`model_columns`); the others are dropped before
            ``data_collator`` sees them, after any ``set_transform``. ``None`` keeps every key
            (``remove_unused_columns=False``).
        id_column: the dataset column of the teacher cache's example ids. It is kept (``data_collator`` sees it as
            before, and may pass it on or drop it); whatever ``data_collator`` made of it is replaced by the int64
            tensor ``batch["example_id"]`` (``constants.EXAMPLE_ID_KEY``) of the features' ids, the key the cache
            reads and no adapter passes to a model.
    """

    def __init__(self, data_collator, keep=None, id_column: str = EXAMPLE_ID_KEY):
        self.data_collator = data_collator
        self.keep = None if keep is None else frozenset(keep)
        self.id_column = id_column
        self._logged = False

    def __getattr__(self, name):
        if name.startswith("__") or name == "data_collator":  # unpickling: nothing to delegate to yet
            raise AttributeError(name)
        return getattr(self.data_collator, name)

    def _model_feature(self, feature):
        if not isinstance(feature, Mapping):
            return feature
        unused = set() if self.keep is None else set(feature) - self.keep - {self.id_column}
        if unused and not self._logged:
            logger.info("columns without a forward() argument are not passed to the model: %s",
                        ", ".join(sorted(unused)))
            self._logged = True
        return {k: v for k, v in feature.items() if k not in unused}

    def __call__(self, features):
        features = list(features)
        column = self.id_column
        ids = None
        if features and isinstance(features[0], Mapping) and column in features[0]:
            ids = torch.tensor([int(feature[column]) for feature in features], dtype=torch.long)
        batch = self.data_collator([self._model_feature(feature) for feature in features])
        if ids is not None:  # the ids apart from the model inputs, under the one key, whatever the column's name
            batch.pop(column, None)
            batch[EXAMPLE_ID_KEY] = ids
        return batch
