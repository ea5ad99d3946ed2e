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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from . import Task, TaskData, register_task

__all__ = ["ImageClassificationTask", "ImageProcessor", "load_image_data", "copy_timm_blocks", "DIGITS_SOURCE"]

DIGITS_SOURCE = "sklearn:digits"
DATA_CONFIG_FILENAME = "timm_data_config.json"
_DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


# ---------------------------------------------------------------------------------------------- data
def _digits_dataset(seed: int):
    """scikit-learn's digits as a ``DatasetDict`` with an ``Image`` column (8x8 'L' images, 0..255)."""
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(int)
    index = np.arange(len(labels))
    train_idx, rest = train_test_split(index, test_size=0.4, random_state=seed, stratify=labels)
    val_idx, test_idx = train_test_split(rest, test_size=0.5, random_state=seed, stratify=labels[rest])
    names = [str(i) for i in range(10)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def build(ids):
        return datasets.Dataset.from_dict(
            {"image": [Image.fromarray(pixels[i], mode="L") for i in ids], "label": [int(labels[i]) for i in ids]},
            features=features,
        )

    return datasets.DatasetDict({"train": build(train_idx), "validation": build(val_idx), "test": build(test_idx)})


def _load_raw(section):
    import datasets

    source = section.source
    if source == DIGITS_SOURCE:
        return _digits_dataset(section.seed)
    if not source:
        raise ValueError("data.source is required for image-classification (an imagefolder directory, a Hub id or sklearn:digits)")
    if source.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(source)):
        raise ValueError(
            f"data.source: the directory {source!r} does not exist (expected an imagefolder: train/<label>/*.jpg, "
            "val/<label>/..., optionally test/)"
        )
    if os.path.isdir(os.path.expanduser(source)):
        raw = datasets.load_dataset("imagefolder", data_dir=os.path.expanduser(source))
    else:
        from ..loading import is_offline

        if is_offline():
            raise ValueError(
                f"data.source {source!r} is neither a local imagefolder directory nor {DIGITS_SOURCE!r}, and the Hub is "
                "unreachable (HF_HUB_OFFLINE=1): give the local path of the images (train/<label>/*.jpg, val/...)"
            )
        raw = datasets.load_dataset(source, section.config_name)
    renames = {section.train_split: "train", section.validation_split: "validation", section.test_split: "test", "val": "validation"}
    out = {}
    for split, dataset in raw.items():
        name = renames.get(split, split)
        if name in ("train", "validation", "test") and name not in out:
            out[name] = dataset
    return datasets.DatasetDict(out)


def _image_column(dataset) -> str:
    import datasets

    columns = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    if not columns:
        raise ValueError(
            f"data: no image column (a datasets.Image feature) among the columns {', '.join(dataset.column_names)}; "
            "load the images as an imagefolder or cast the column with datasets.Image()"
        )
    return columns[0]


def is_timm_directory(path) -> bool:
    """Whether ``path`` holds a model saved in timm's format (``config.json`` with timm's ``architecture`` key, as
    ``timm``'s ``save_config_for_hf`` writes it; a transformers ``config.json`` has ``model_type`` instead)."""
    path = os.path.expanduser(str(path))
    if os.path.isfile(os.path.join(path, DATA_CONFIG_FILENAME)):
        return True
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "architecture" in config and "model_type" not in config


def load_image_data(section, need_test: bool = True):
    """Load, check and label-encode the image splits. Returns ``(DatasetDict, label_names, info)``: each split
    keeps its image column and an integer ``label`` (``ClassLabel``) column."""
    import datasets

    raw = _load_raw(section)
    if "train" not in raw:
        raise ValueError(f"data {section.source!r} has no training split (found {', '.join(raw) or 'none'})")
    image_column = _image_column(raw["train"])
    for split, dataset in raw.items():
        missing = [c for c in (image_column, section.label_column) if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"data: column(s) {', '.join(map(repr, missing))} not found in split {split!r} of {section.source}; the "
                f"columns are {', '.join(dataset.column_names)} (set data.label_column)"
            )
        if len(dataset) == 0:
            raise ValueError(f"data: the {split} split of {section.source} is empty")
    feature = raw["train"].features[section.label_column]
    if isinstance(feature, datasets.ClassLabel):
        label_names = list(feature.names)
        to_name = dict(enumerate(feature.names))
    else:
        label_names = sorted({str(v) for v in raw["train"][section.label_column]})
        to_name = None
    fixed = getattr(section, "label_names", None)
    if fixed:  # the label order of an already trained model (evaluation)
        label_names = [str(n) for n in fixed]
    index = {name: i for i, name in enumerate(label_names)}

    def name_of(value, split_feature):
        if isinstance(split_feature, datasets.ClassLabel):
            return split_feature.names[value]
        return str(value)

    splits = {}
    for split, dataset in raw.items():
        split_feature = dataset.features[section.label_column]
        names = [name_of(v, split_feature) for v in dataset[section.label_column]]
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ValueError(
                f"data: the {split} split has label(s) the training split does not have ({', '.join(map(repr, unknown[:5]))})"
            )
        dataset = dataset.select_columns([image_column, section.label_column])
        if section.label_column != "label" or to_name is None or split_feature != feature or label_names != list(feature.names):
            dataset = dataset.remove_columns(section.label_column).add_column("label", [index[n] for n in names])
        splits[split] = dataset.cast_column("label", datasets.ClassLabel(names=label_names))
    if "validation" not in splits:
        try:
            parts = splits["train"].train_test_split(test_size=section.validation_fraction, seed=section.seed, stratify_by_column="label")
        except ValueError:
            parts = splits["train"].train_test_split(test_size=section.validation_fraction, seed=section.seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
    if need_test and "test" not in splits:
        raise ValueError(
            f"data {section.source!r} has no test split: add a test/ folder, or evaluate on the validation split with "
            "evaluation.split=validation (ImageNet's val/ is the usual test set)"
        )
    if section.max_train_samples is not None and section.max_train_samples < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=section.seed).select(range(section.max_train_samples))
    if section.max_eval_samples is not None:
        for split in ("validation", "test"):
            if split in splits and section.max_eval_samples < len(splits[split]):
                splits[split] = splits[split].shuffle(seed=section.seed).select(range(section.max_eval_samples))
    source = section.source
    default_name = "digits (scikit-learn)" if source == DIGITS_SOURCE else os.path.basename(os.path.normpath(source))
    info = {
        "name": section.name or default_name,
        "source": source,
        "num_labels": len(label_names),
        "splits": {k: len(v) for k, v in splits.items()},
        "text_column": image_column,  # the input column (results.json key shared with text)
        "image_column": image_column,
        "label_column": section.label_column,
        "license": section.license or ("BSD-3-Clause (scikit-learn; UCI Optical Recognition of Handwritten Digits)" if source == DIGITS_SOURCE else None),
        "citation": section.citation,
    }
    return datasets.DatasetDict(splits), label_names, info


# ---------------------------------------------------------------------------------------------- processor
@dataclass
class ImageProcessor:
    """timm's data config of a model (``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``,
    ``crop_mode``) and the eval transform built from it with ``timm.data.create_transform``."""

    data_config: dict = field(default_factory=dict)

    @classmethod
    def from_model(cls, model) -> "ImageProcessor":
        from ..adapters.timm import timm_data_config

        config = timm_data_config(model)
        return cls({k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k in _DATA_CONFIG_KEYS})

    def transform(self):
        from timm.data import create_transform

        config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.data_config.items()}
        return create_transform(**config, is_training=False)

    def save_pretrained(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, DATA_CONFIG_FILENAME)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.data_config, handle, indent=1)
        return path


def transform_splits(splits, processor: ImageProcessor, image_column: str = None):
    """``set_transform`` on every split: ``{"pixel_values": (3, H, W) float tensor, "labels": int}``."""
    transform = processor.transform()
    channels = int(processor.data_config.get("input_size", (3,))[0])
    mode = "RGB" if channels == 3 else "L"
    out = {}
    for name, dataset in splits.items():
        column = image_column or _image_column(dataset)

        def apply(batch, column=column):
            return {
                "pixel_values": [transform(image.convert(mode)) for image in batch[column]],
                "labels": list(batch["label"]),
            }

        dataset = dataset.with_transform(apply)
        out[name] = dataset
    import datasets

    return datasets.DatasetDict(out)


def image_collator(features):
    import torch

    return {
        "pixel_values": torch.stack([f["pixel_values"] for f in features]),
        "labels": torch.tensor([int(f["labels"]) for f in features], dtype=torch.long),
    }


# ---------------------------------------------------------------------------------------------- models
def check_timm_reference(name: str, what: str, pretrained: bool) -> bool:
    """Check a timm model reference without building it: True for a local directory; a timm name or ``hf-hub:`` id
    must exist and, when its pretrained weights are needed, the Hub must be reachable."""
    import timm

    from ..loading import is_offline

    path = os.path.expanduser(str(name))
    if os.path.isdir(path):
        return True
    if name.startswith(("./", "../", "/", "~")):
        raise ValueError(f"{what}: the directory {name!r} does not exist")
    if pretrained and is_offline():
        raise ValueError(
            f"{what}: {name!r} needs pretrained weights from the Hub, which is unreachable (HF_HUB_OFFLINE=1). Download "
            "them elsewhere (timm.create_model(name, pretrained=True) then save with hf_spectralkd's trainer or "
            "timm.models.save_for_hf) and give the local directory, or set pretrained: false"
        )
    base = name.split(":", 1)[-1].split("/")[-1] if name.startswith("hf-hub:") else name
    if not name.startswith("hf-hub:") and not timm.is_model(base):
        raise ValueError(f"{what}: {name!r} is not a timm model name (see timm.list_models()) nor a local directory")
    return False


def _create(name: str, what: str, pretrained: bool, **kwargs):
    import timm

    from ..adapters.timm import load_timm_model

    if check_timm_reference(name, what, pretrained):
        return load_timm_model(os.path.expanduser(str(name)), what=what, **kwargs)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{what}: timm.create_model({name!r}) rejected an argument: {exc}") from exc


def _label_cfg(label_names) -> dict:
    return {"label_names": list(label_names)}


def copy_timm_blocks(teacher, init_layers, overrides=None):
    """A student of the teacher's architecture with ``len(init_layers)`` blocks copied from the teacher
    (ViT / DeiT / CaiT: ``blocks.{j}`` <- ``blocks.{init_layers[j]-1}``; everything else copied as is)."""
    import re

    import timm
    import torch

    from ..adapters.timm import _base

    teacher = _base(teacher)
    blocks = getattr(teacher, "blocks", None)
    if not isinstance(blocks, (torch.nn.Sequential, torch.nn.ModuleList)):
        raise ValueError(
            f"student.init teacher_layers copies ViT-style blocks, but {type(teacher).__name__} has no `blocks` list "
            "(Swin counts stages): use student.init config or pretrained"
        )
    n = len(blocks)
    bad = [i for i in init_layers if not 1 <= i <= n]
    if bad:
        raise ValueError(f"student.init_layers {bad} out of range: the teacher has {n} blocks, valid layers are 1..{n}")
    args = dict(getattr(teacher, "_model_args", {}) or {})
    for key in ("embed_dim", "num_heads", "patch_size", "img_size"):
        if key in (overrides or {}) and key in args and overrides[key] != args[key]:
            raise ValueError(f"student.config.{key} cannot change when copying teacher blocks (the weights must fit)")
    args.update({k: v for k, v in (overrides or {}).items() if k != "pretrained_cfg_overlay"})
    args["depth"] = len(init_layers)
    cfg = {k: v for k, v in teacher.pretrained_cfg.items() if k in (*_DATA_CONFIG_KEYS, "label_names")}
    student = timm.create_model(teacher.pretrained_cfg["architecture"], pretrained=False, pretrained_cfg_overlay=cfg, **args)
    pattern = re.compile(r"^blocks\.(\d+)\.(.*)$")
    source = teacher.state_dict()
    target = {}
    for key in student.state_dict():
        match = pattern.match(key)
        teacher_key = f"blocks.{init_layers[int(match.group(1))] - 1}.{match.group(2)}" if match else key
        target[key] = source[teacher_key].clone()
    student.load_state_dict(target, strict=True)
    return student


_TRAINER_CLASS = None


def timm_trainer_class():
    """A ``transformers.Trainer`` for plain (no-KD) training and evaluation of a timm classifier: the forward
    pass goes through the timm adapter (``pixel_values`` -> logits), the loss is cross-entropy on ``labels``,
    no column is removed (``set_transform`` datasets keep their raw image column) and saving writes timm's
    format."""
    global _TRAINER_CLASS
    if _TRAINER_CLASS is not None:
        return _TRAINER_CLASS
    import torch
    import torch.nn.functional as F
    from transformers import Trainer
    from transformers.modeling_outputs import SequenceClassifierOutput

    from ..adapters import get_adapter, unwrap_model

    class TimmClassifierTrainer(Trainer):
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
            model = unwrap_model(self.accelerator.unwrap_model(self.model, keep_torch_compile=False))
            if self.args.should_save and get_adapter(model).save_pretrained(model, output_dir, state_dict=state_dict):
                from transformers.trainer import TRAINING_ARGS_NAME

                torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
                return
            super()._save(output_dir, state_dict)

    _TRAINER_CLASS = TimmClassifierTrainer
    return _TRAINER_CLASS


@register_task("image-classification")
class ImageClassificationTask(Task):
    """Image classification with timm models (ViT / DeiT / CaiT / Swin ...) through the timm adapter."""

    def load_data(self, recipe) -> TaskData:
        splits, label_names, info = load_image_data(recipe.data, need_test=recipe.evaluation.split == "test")
        return TaskData(splits=splits, label_names=label_names, info=info)

    def load_processor(self, recipe, model_ref):
        """The data config of the model at ``model_ref`` (a saved directory or a timm name, built without weights)."""
        path = os.path.expanduser(str(model_ref)) if model_ref is not None else None
        if path and os.path.isfile(os.path.join(path, DATA_CONFIG_FILENAME)):
            with open(os.path.join(path, DATA_CONFIG_FILENAME), encoding="utf-8") as handle:
                return ImageProcessor(json.load(handle))
        if path and os.path.isdir(path):
            return ImageProcessor.from_model(_create(path, "teacher", pretrained=True))
        kwargs = dict(getattr(recipe.teacher, "config", None) or {})
        kwargs.pop("pretrained", None)
        return ImageProcessor.from_model(_create(str(model_ref), "teacher", pretrained=False, **kwargs))

    def processor_for_model(self, model) -> ImageProcessor:
        return ImageProcessor.from_model(model)

    def prepare_datasets(self, recipe, data: TaskData, processor):
        return transform_splits(data.splits, processor)

    def data_collator(self, processor):
        return image_collator

    def load_base(self, recipe, model_ref, label_names):
        kwargs = dict(getattr(recipe.teacher, "config", None) or {})
        pretrained = bool(kwargs.pop("pretrained", True))
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", {}) or {})
        overlay.update(_label_cfg(label_names))
        model = _create(str(model_ref), "teacher.base", pretrained=pretrained, num_classes=len(label_names),
                        pretrained_cfg_overlay=overlay, **kwargs)
        return model

    def load_classifier(self, recipe, model_ref, label_names=None, what="model"):
        model = _create(str(model_ref), what, pretrained=True)
        if label_names is not None:
            self.check_labels(model, label_names, what)
        return model

    @staticmethod
    def check_labels(model, label_names, what="model"):
        n = getattr(model, "num_classes", None)
        if n != len(label_names):
            raise ValueError(f"{what} predicts {n} classes but the data has {len(label_names)} labels")
        names = model.pretrained_cfg.get("label_names")
        if names and list(map(str, names)) != list(label_names):
            diff = [i for i in range(n) if str(names[i]) != label_names[i]][:1]
            raise ValueError(
                f"{what}'s label_names differ from the data's labels (e.g. id {diff[0]}: model {names[diff[0]]!r}, data "
                f"{label_names[diff[0]]!r}); it was trained on another label set"
            )
        if not names:
            model.pretrained_cfg = {**model.pretrained_cfg, **_label_cfg(label_names)}

    def build_student(self, recipe, teacher, label_names, init_layers):
        from ..adapters.timm import _base

        section = recipe.student
        teacher = _base(teacher)
        data_cfg = {k: v for k, v in teacher.pretrained_cfg.items() if k in _DATA_CONFIG_KEYS}
        overrides = dict(section.config or {})
        if section.init == "teacher_layers":
            student = copy_timm_blocks(teacher, list(init_layers), overrides)
        elif section.init == "pretrained":
            overrides.pop("pretrained", None)
            overlay = {**dict(overrides.pop("pretrained_cfg_overlay", {}) or {}), **_label_cfg(label_names)}
            student = _create(section.model, "student.model", pretrained=True, num_classes=len(label_names),
                              pretrained_cfg_overlay=overlay, **overrides)
        else:  # a fresh model: student.config.architecture (default: the teacher's) with the given arguments
            architecture = overrides.pop("architecture", None)
            overrides.pop("pretrained", None)
            overlay = {**data_cfg, **dict(overrides.pop("pretrained_cfg_overlay", {}) or {}), **_label_cfg(label_names)}
            if architecture is None or architecture == teacher.pretrained_cfg.get("architecture"):
                architecture = teacher.pretrained_cfg["architecture"]
                args = {k: v for k, v in (getattr(teacher, "_model_args", {}) or {}).items() if k != "num_classes"}
            else:
                args = {"img_size": tuple(teacher.pretrained_cfg.get("input_size", (3, 224, 224))[1:])} if "img_size" not in overrides else {}
            args.update(overrides)
            if section.num_layers is not None:
                args["depth"] = section.num_layers
            student = _create(architecture, "student", pretrained=False, num_classes=len(label_names),
                              pretrained_cfg_overlay=overlay, **args)
        self._match_normalisation(student, teacher)
        return student

    @staticmethod
    def _match_normalisation(student, teacher):
        """The pipeline prepares the pixels once, with the teacher's data config: a student from elsewhere
        (``init: pretrained``) is told to expect the same normalisation (recorded in its saved config)."""
        keys = ("mean", "std", "crop_pct", "interpolation", "crop_mode")
        cfg = dict(student.pretrained_cfg)
        for key in keys:
            if key in teacher.pretrained_cfg:
                cfg[key] = teacher.pretrained_cfg[key]
        student.pretrained_cfg = cfg

    def training_overrides(self, recipe) -> dict:
        # timm's forward(x) takes no `pixel_values` / `labels` argument: keep every column, name the labels
        return {"remove_unused_columns": False, "label_names": ["labels"]}

    def save_model(self, model, directory: str) -> None:
        """Save in timm's format (``config.json`` + ``model.safetensors``)."""
        from ..adapters import get_adapter

        get_adapter(model).save_pretrained(model, directory)

    def trainer_class(self):
        return timm_trainer_class()

    def check_references(self, recipe, teacher_ref) -> None:
        teacher = recipe.teacher
        pretrained = bool((teacher.config or {}).get("pretrained", True)) if teacher.base else True
        check_timm_reference(str(teacher_ref), "teacher.base" if teacher.base else "teacher.model", pretrained)
        if recipe.student.init == "pretrained":
            check_timm_reference(str(recipe.student.model), "student.model", True)

    def reference_depth(self, recipe, model_ref):
        depth = (getattr(recipe.teacher, "config", None) or {}).get("depth")
        return depth if isinstance(depth, int) else None  # otherwise the architecture's default: checked after building

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
                f"{what}: {reference!r} is neither a local directory nor a timm model name (see timm.list_models('vit_*'))"
            )
        return reference
