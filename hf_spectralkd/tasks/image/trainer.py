"""The plain (no-KD) ``transformers.Trainer`` of timm classifiers: teacher fine-tuning, the no-KD baseline and
evaluation of the image task."""

from __future__ import annotations

import torch.nn.functional as F
from transformers import Trainer
from transformers.modeling_outputs import SequenceClassifierOutput

from ...adapters import get_adapter

__all__ = ["TimmClassifierTrainer"]


class TimmClassifierTrainer(Trainer):
    """The forward pass goes through the timm adapter (``pixel_values`` -> logits), the loss is cross-entropy on
    ``labels``, no column is removed (``set_transform`` datasets keep their raw image column) and saving writes
    timm's format."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # compute_loss returns a per-batch mean
        if not self.label_names:
            self.label_names = ["labels"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = get_adapter(model).forward(model, inputs, output_hidden_states=False)
        labels = inputs.get("labels")
        loss = F.cross_entropy(out.logits.float(), labels) if labels is not None else out.logits.new_zeros(())
        return (loss, SequenceClassifierOutput(loss=loss, logits=out.logits)) if return_outputs else loss

    def _remove_unused_columns(self, dataset, description=None):
        return dataset

    def _get_collator_with_removed_columns(self, data_collator, description=None):
        return data_collator

    def _save(self, output_dir=None, state_dict=None):
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not get_adapter(self.model).save_trainer_model(self, output_dir, state_dict):  # timm's format
            super()._save(output_dir, state_dict)
