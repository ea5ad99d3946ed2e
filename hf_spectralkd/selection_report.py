"""What the layer selection picked, told where the user looks: the transformers logger (the intensities and the
aligned pairs) and TensorBoard (one scalar per teacher layer and the layer-intensity figure), when the run has a
``TensorBoardCallback`` (``report_to="tensorboard"``)."""

from __future__ import annotations

import os

from transformers import TrainerCallback
from transformers.utils import logging

from .constants import PLOT_FILENAME

__all__ = ["TB_TAG_PREFIX", "SelectionReportCallback", "log_layer_selection", "selection_message"]

# under the `transformers` logger: it follows the Trainer's `log_level` / transformers verbosity and handler, so the
# selection shows exactly where and when Trainer's own "***** Running training *****" banner does
logger = logging.get_logger("transformers.hf_spectralkd")
TB_TAG_PREFIX = "spectralkd/teacher_intensity"


def selection_message(layer_map) -> str:
    """One line a person reads: the strategy, the intensities per teacher layer (selected ones starred) and the
    pairs."""
    intensity = layer_map.teacher_intensity
    if not layer_map.pairs:
        return "SpectralKD: no layers aligned (beta=0 or none selected): logit KD only"
    text = f"SpectralKD layer selection ({layer_map.strategy}): aligned (student, teacher) pairs {layer_map.pairs}"
    if intensity:
        chosen = set(layer_map.teacher_layers)
        values = ", ".join(f"{i}{'*' if i in chosen else ''}: {v:.4g}" for i, v in enumerate(intensity))
        text += f"; teacher layer intensity (0 = embeddings, * = selected) {values}"
    return text


def log_layer_selection(layer_map) -> None:
    """Log the selection at INFO level, as ``Trainer`` logs its own ``Running training`` banner."""
    logger.info(selection_message(layer_map))


def _tensorboard_writer(trainer):
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        writer = getattr(callback, "tb_writer", None)
        if isinstance(callback, TensorBoardCallback) and writer is not None:
            return writer
    return None


class SelectionReportCallback(TrainerCallback):
    """On ``train_begin`` (after the TensorBoard callback has opened its writer) write the teacher's layer intensities
    as scalars (``spectralkd/teacher_intensity`` at step = layer index) and the layer-intensity figure."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        layer_map = self.trainer.layer_map
        writer = _tensorboard_writer(self.trainer)
        if not state.is_world_process_zero or writer is None or layer_map is None or not layer_map.teacher_intensity:
            return
        for layer, value in enumerate(layer_map.teacher_intensity):
            writer.add_scalar(TB_TAG_PREFIX, float(value), global_step=layer)
        writer.add_text("spectralkd/layer_selection", selection_message(layer_map), global_step=0)
        plot = os.path.join(args.output_dir, PLOT_FILENAME)
        if os.path.isfile(plot):
            import matplotlib.image

            writer.add_image(f"{TB_TAG_PREFIX}_plot", matplotlib.image.imread(plot)[..., :3], 0, dataformats="HWC")
        writer.flush()
