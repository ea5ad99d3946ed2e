"""Pixels for timm models: the model's data config (``ImageProcessor``), the lazy eval transform of the splits
and the batch collator."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ...adapters.timm import DATA_CONFIG_KEYS
from ...constants import TIMM_DATA_CONFIG_FILENAME as DATA_CONFIG_FILENAME
from ...utils import write_json
from .data import image_column as find_image_column

__all__ = ["ImageProcessor", "transform_splits", "image_collator", "pixel_collator", "DATA_CONFIG_FILENAME",
           "DATA_CONFIG_KEYS"]


@dataclass
class ImageProcessor:
    """timm's data config of a model (``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``,
    ``crop_mode``) and the eval transform built from it with ``timm.data.create_transform``."""

    data_config: dict = field(default_factory=dict)

    @classmethod
    def from_model(cls, model) -> ImageProcessor:
        from ...adapters.timm import timm_data_config

        config = timm_data_config(model)
        return cls({k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k in DATA_CONFIG_KEYS})

    def transform(self):
        from timm.data import create_transform

        config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.data_config.items()}
        return create_transform(**config, is_training=False)

    def save_pretrained(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        return write_json(os.path.join(directory, DATA_CONFIG_FILENAME), self.data_config, indent=1)


def transform_splits(splits, processor: ImageProcessor, image_column: str = None):
    """``set_transform`` on every split: ``{"pixel_values": (3, H, W) float tensor, "labels": int}``."""
    transform = processor.transform()
    channels = int(processor.data_config.get("input_size", (3,))[0])
    mode = "RGB" if channels == 3 else "L"
    out = {}
    for name, dataset in splits.items():
        column = image_column or find_image_column(dataset)

        def apply(batch, column=column):
            return {
                "pixel_values": [transform(image.convert(mode)) for image in batch[column]],
                "labels": list(batch["label"]),
            }

        out[name] = dataset.with_transform(apply)
    import datasets

    return datasets.DatasetDict(out)


def image_collator(features):
    import torch

    return {
        "pixel_values": torch.stack([f["pixel_values"] for f in features]),
        "labels": torch.tensor([int(f["labels"]) for f in features], dtype=torch.long),
    }


def pixel_collator(features):
    """Batches of ``pixel_values`` only (the spectral analysis needs no labels)."""
    import torch

    return {"pixel_values": torch.stack([f["pixel_values"] for f in features])}
