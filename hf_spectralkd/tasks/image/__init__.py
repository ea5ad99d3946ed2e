"""``image-classification``: timm classifiers on images loaded through ``datasets``.

Data (``data.source``):

* a local directory in ``imagefolder`` layout (``train/<label>/*.png``, ``validation/`` or ``val/``,
  ``test/``), loaded with ``datasets.load_dataset("imagefolder", data_dir=...)``;
* a Hub dataset id with an ``Image`` column (``data.config_name`` selects a configuration);
* ``sklearn:digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 grey images, 10 classes,
  no download), split once into train / validation / test (60 / 20 / 20 %, stratified, ``data.seed``).

The image column is the dataset's ``datasets.Image`` column (``image`` for an imagefolder); the label
column is ``data.label_column``. Pixels go through timm's own transforms (``create_transform`` with the
model's data config from ``timm.data.resolve_input_data_config``: resize, centre crop, normalise),
applied lazily with ``Dataset.set_transform``; no augmentation is applied (same transform for every
split), so ImageNet-scale training does not reproduce the paper's DeiT augmentation recipe.

Models (``teacher.base`` / ``teacher.model`` / ``student.model``): a timm model name (``pretrained`` Hub
weights unless ``teacher.config.pretrained: false``), an ``hf-hub:`` id, or a directory saved by this
project (timm format: ``config.json`` + ``model.safetensors``). ``teacher.config`` / ``student.config``
are ``timm.create_model`` keyword arguments (``img_size``, ``patch_size``, ``depth``, ``embed_dim``, ...,
plus ``pretrained_cfg_overlay`` for the data config: ``mean``, ``std``, ``crop_pct``...).

Modules: ``data`` (splits), ``processing`` (data config, transforms, collators), ``models`` (timm models and
students), ``trainer`` (the plain Trainer of timm classifiers).
"""

from __future__ import annotations

import os

from ...utils import read_json
from ..base import Task, TaskData
from ..registry import register_task
from .data import DIGITS_SOURCE, load_image_data
from .models import (
    build_image_student,
    check_image_student,
    check_timm_reference,
    copy_timm_blocks,
    create_timm_model,
    is_timm_directory,
    label_config,
)
from .processing import DATA_CONFIG_FILENAME, ImageProcessor, image_collator, pixel_collator, transform_splits

__all__ = ["ImageClassificationTask", "ImageProcessor", "load_image_data", "copy_timm_blocks", "DIGITS_SOURCE",
           "is_timm_directory", "check_timm_reference", "transform_splits", "image_collator"]


def _model_kwargs(recipe) -> dict:
    """``teacher.config`` of ``recipe`` (None: a command, which has no recipe)."""
    return dict(getattr(getattr(recipe, "teacher", None), "config", None) or {})


@register_task("image-classification")
class ImageClassificationTask(Task):
    """Image classification with timm models (ViT / DeiT / CaiT / Swin ...) through the timm adapter."""

    def load_splits(self, section, need_test: bool = True) -> TaskData:
        splits, label_names, info = load_image_data(section, need_test=need_test)
        return TaskData(splits=splits, label_names=label_names, info=info)

    def read_rows(self, source: str, split: str = "train", what: str = "--data"):
        """The raw, labelled images of ``split`` (each model applies its own transform later)."""
        from ..sections import data_section

        splits = self.load_splits(data_section(source, "train"), need_test=False).splits
        if split not in splits:
            raise ValueError(f"--split {split!r} not in {source} (found {', '.join(splits)})")
        return splits[split]

    def load_processor(self, recipe, model_ref):
        """The data config of the model at ``model_ref`` (a saved directory or a timm name, built without weights;
        ``recipe`` may be None)."""
        path = os.path.expanduser(str(model_ref)) if model_ref is not None else None
        saved = read_json(os.path.join(path, DATA_CONFIG_FILENAME)) if path else None
        if saved is not None:
            return ImageProcessor(saved)
        if path and os.path.isdir(path):
            return ImageProcessor.from_model(create_timm_model(path, "teacher", pretrained=True))
        kwargs = _model_kwargs(recipe)
        kwargs.pop("pretrained", None)
        return ImageProcessor.from_model(create_timm_model(str(model_ref), "teacher", pretrained=False, **kwargs))

    def processor_for_model(self, model) -> ImageProcessor:
        return ImageProcessor.from_model(model)

    def model_processor(self, model, model_ref) -> ImageProcessor:
        """The model's own data config (each model is compared with its own normalisation)."""
        return ImageProcessor.from_model(model)

    def prepare_splits(self, splits, processor, section):
        return transform_splits(splits, processor)

    def data_collator(self, processor):
        return image_collator

    def analysis_loader(self, rows, processor, batch_size: int = 32, **options):
        """Batches of ``pixel_values`` over raw image rows, transformed with ``processor`` (the model's own)."""
        from torch.utils.data import DataLoader

        prepared = transform_splits({"rows": rows}, processor)["rows"]
        return DataLoader(prepared, batch_size=batch_size, collate_fn=pixel_collator)

    def load_base(self, recipe, model_ref, label_names):
        kwargs = _model_kwargs(recipe)
        pretrained = bool(kwargs.pop("pretrained", True))
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", {}) or {})
        overlay.update(label_config(label_names))
        return create_timm_model(str(model_ref), "teacher.base", pretrained=pretrained, num_classes=len(label_names),
                                 pretrained_cfg_overlay=overlay, **kwargs)

    def load_classifier(self, recipe, model_ref, label_names=None, what="model"):
        model = create_timm_model(str(model_ref), what, pretrained=True)
        if label_names is not None:
            self.check_labels(model, label_names, what)
        return model

    def load_model(self, reference: str, what: str = "--model", quiet: bool = False):
        location = self.resolve_reference(reference, what)
        try:
            return location, self.load_classifier(None, location, what=what).eval()
        except (KeyError, RuntimeError, OSError) as exc:
            raise ValueError(f"{what}: could not load {location!r} as a timm model ({exc})") from exc

    @staticmethod
    def check_labels(model, label_names, what="model"):
        n = getattr(model, "num_classes", None)
        if n != len(label_names):
            raise ValueError(f"{what} predicts {n} classes but the data has {len(label_names)} labels")
        names = model.pretrained_cfg.get("label_names")
        if names and list(map(str, names)) != list(label_names):
            diff = [i for i in range(n) if str(names[i]) != label_names[i]][:1]
            raise ValueError(
                f"{what}'s label_names differ from the data's labels (e.g. id {diff[0]}: model "
                f"{names[diff[0]]!r}, data {label_names[diff[0]]!r}); it was trained on another label set"
            )
        if not names:
            model.pretrained_cfg = {**model.pretrained_cfg, **label_config(label_names)}

    def build_student(self, recipe, teacher, label_names, init_layers):
        return build_image_student(recipe.student, teacher, label_names, init_layers)

    def training_overrides(self, recipe) -> dict:
        # timm's forward(x) takes no `pixel_values` / `labels` argument: keep every column, name the labels
        return {"remove_unused_columns": False, "label_names": ["labels"]}

    def trainer_class(self):
        """The ``transformers.Trainer`` subclass for plain (no-KD) training and evaluation of timm classifiers."""
        from .trainer import TimmClassifierTrainer

        return TimmClassifierTrainer

    def check_references(self, recipe, teacher_ref) -> None:
        teacher = recipe.teacher
        pretrained = bool((teacher.config or {}).get("pretrained", True)) if teacher.base else True
        check_timm_reference(str(teacher_ref), "teacher.base" if teacher.base else "teacher.model", pretrained)
        if recipe.student.init == "pretrained":
            check_timm_reference(str(recipe.student.model), "student.model", True)
        check_image_student(recipe, teacher_ref)

    def reference_depth(self, recipe, model_ref):
        depth = (getattr(recipe.teacher, "config", None) or {}).get("depth")
        # otherwise the architecture's default: checked after building
        return depth if isinstance(depth, int) else None

    def resolve_reference(self, reference, what: str = "model"):
        """A local directory (absolute path) or a timm model name / ``hf-hub:`` id, kept as is: whether the Hub
        is needed depends on ``pretrained`` and is checked when the model is built."""
        if not isinstance(reference, str) or not reference.strip():
            raise ValueError(f"{what}: expected a timm model name or a local directory, got {reference!r}")
        path = os.path.expanduser(reference)
        if os.path.isdir(path):
            return os.path.abspath(path)
        if reference.startswith(("./", "../", "/", "~")):
            raise ValueError(f"{what}: the directory {reference!r} does not exist")
        import timm

        if not reference.startswith("hf-hub:") and not timm.is_model(reference):
            raise ValueError(
                f"{what}: {reference!r} is neither a local directory nor a timm model name "
                "(see timm.list_models('vit_*'))"
            )
        return reference
