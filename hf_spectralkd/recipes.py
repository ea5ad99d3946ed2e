"""Recipe files: plain YAML (``yaml.safe_load``) validated into dataclasses before any work starts.

A recipe has the sections ``name``, ``task``, ``teacher``, ``student``, ``data``, ``distillation``,
``training``, ``evaluation``, ``output`` and ``hub`` (see ``recipes/clinc150_minilm.yaml``). Validation:

- an unknown key is an error naming the key, its section and the file (with close matches suggested);
- values are type-checked against the dataclass annotations (and, for ``distillation`` / ``training``,
  against :class:`~hf_spectralkd.SpectralDistillationConfig`); PyYAML reads ``1e-4`` as a string, so
  numeric strings are accepted where a float is expected;
- relative paths in the file resolve against the recipe file's directory (paths given as command-line
  overrides and ``output.dir`` resolve against the current directory);
- ``key.sub=value`` overrides (value parsed with ``yaml.safe_load``) are applied before validation;
- :func:`smoke` shrinks any recipe to a run of about a minute that still runs every stage.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import functools
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from .augment import AugmentConfig

__all__ = [
    "Recipe",
    "TeacherSection",
    "FinetuneSection",
    "StudentSection",
    "DataSection",
    "EvaluationSection",
    "OutputSection",
    "HubSection",
    "load_recipe",
    "parse_overrides",
    "apply_overrides",
    "smoke",
    "distillation_field_names",
    "distillation_default",
    "training_field_names",
]

STUDENT_INITS = ("teacher_layers", "pretrained", "config")
INIT_LAYER_RULES = ("uniform", "selected", "topk", "ends")
UNSEEN_TAG_RULES = ("error", "keep")  # data.unseen_tags (token-classification)


# ---------------------------------------------------------------------------------------------- sections
@dataclass
class FinetuneSection:
    """How the teacher base is fine-tuned on the training split."""

    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    weight_decay: float = 0.0
    warmup_steps: float = 0.0
    max_steps: int = -1
    gradient_accumulation_steps: int = 1
    seed: int = 42
    select_best: bool = True  # evaluate every epoch on validation, keep the best epoch, stop early (epochs = budget)
    patience: int = 2  # select_best: stop after this many epochs without a better validation accuracy
    args: dict = field(default_factory=dict)  # any other TrainingArguments field


@dataclass
class TeacherSection:
    model: str | None = field(default=None, metadata={"path": "model"})  # a fine-tuned classifier
    base: str | None = field(default=None, metadata={"path": "model"})  # a base model to fine-tune
    finetune: FinetuneSection | None = None
    config: dict = field(default_factory=dict)  # model-construction kwargs (image task: timm.create_model args)
    cache: bool = False  # distillation reads the teacher's outputs from <out>/teacher_cache instead of re-running it


@dataclass
class StudentSection:
    init: str = "teacher_layers"
    num_layers: int | None = None
    init_layers: str | list[int] = "uniform"
    model: str | None = field(default=None, metadata={"path": "model"})
    config: dict = field(default_factory=dict)
    peft: dict | None = None  # filled in by the scale-out work (LoRA students)


@dataclass
class TransferSection:
    """Unlabelled texts the teacher labels for the student (``data.transfer``); labels in the source are ignored."""

    source: str = field(metadata={"path": "model"})  # a file, a directory, a Hub id, or `train` (see labels_per_class)
    text_column: str | None = None  # default: data.text_column (token-classification: data.tokens_column)
    split: str = "train"
    max_samples: int | None = None


@dataclass
class DataSection:
    source: str | None = field(default=None, metadata={"path": "model"})
    config_name: str | None = None  # Hub dataset configuration (e.g. clinc_oos "plus")
    train_file: str | None = field(default=None, metadata={"path": "file"})
    validation_file: str | None = field(default=None, metadata={"path": "file"})
    test_file: str | None = field(default=None, metadata={"path": "file"})
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    label_names: list[str] | None = None  # fixed label set (default: the sorted labels of the training split)
    # token-classification: the word-list and tag-list columns (JSONL / CSV / Parquet / Hub; CoNLL files need none)
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    label_all_tokens: bool = False  # label every sub-word of a word (default: the first only, the others -100)
    unseen_tags: str = "error"  # a validation/test tag training never saw: "error", or "keep" (counted as misses)
    max_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    validation_fraction: float = 0.1
    seed: int = 42
    labels_per_class: int | None = None  # keep this many labelled training rows per class (low-label regime)
    transfer: TransferSection | None = None  # unlabelled texts the teacher labels (KD and L_freq only)
    augment: AugmentConfig | None = None  # augmented copies of the labelled training texts, as transfer rows
    name: str | None = None  # dataset name in results.json / the model card
    license: str | None = None
    citation: str | None = None


@dataclass
class EvaluationSection:
    split: str = "test"
    baseline: bool = True
    batch_size: int | None = None
    # the no-KD baseline is recommended over the distilled student only when it leads by more than this many points
    # of validation accuracy
    recommend_margin: float = 0.0


@dataclass
class OutputSection:
    dir: str | None = None  # default runs/<name>, relative to the current directory


@dataclass
class HubSection:
    push_to_hub: bool = False
    hub_model_id: str | None = None
    private: bool = False


@dataclass
class Recipe:
    name: str
    teacher: TeacherSection
    data: DataSection
    task: str = "text-classification"
    student: StudentSection = field(default_factory=StudentSection)
    distillation: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    output: OutputSection = field(default_factory=OutputSection)
    hub: HubSection = field(default_factory=HubSection)
    path: str | None = None  # the recipe file (set by load_recipe)
    smoke: bool = False

    @property
    def output_dir(self) -> str:
        return self.output.dir or os.path.join("runs", self.name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def distillation_value(self, name: str):
        """The recipe's ``distillation.<name>``, or :class:`~hf_spectralkd.SpectralDistillationConfig`'s default."""
        return self.distillation.get(name, distillation_default(name))


# ---------------------------------------------------------------------------------------------- fields
@functools.cache
def _distillation_only_fields() -> dict:
    from transformers import TrainingArguments

    from .distillation_config import SpectralDistillationConfig

    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {f.name: f for f in dataclasses.fields(SpectralDistillationConfig) if f.name not in base and f.init}


def distillation_field_names() -> list:
    return sorted(_distillation_only_fields())


def distillation_default(name: str):
    """The default of the SpectralKD field ``name``, read from :class:`~hf_spectralkd.SpectralDistillationConfig`."""
    f = _distillation_only_fields()[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def training_field_names() -> list:
    from transformers import TrainingArguments

    return sorted(f.name for f in dataclasses.fields(TrainingArguments) if f.init)


# fields the pipeline sets itself
_RESERVED_TRAINING = {"output_dir": "set output.dir instead"}


def _type_hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - exotic annotations: fall back to unchecked
        return {}


# ---------------------------------------------------------------------------------------------- coercion
class _Mismatch(Exception):
    pass


def _describe_type(tp) -> str:
    if tp in (int, float, str, bool, dict, list):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value, tp):
    """Return ``value`` converted to ``tp`` (the few conversions YAML needs), or raise _Mismatch."""
    if tp is Any or tp is None or tp is type(None) and value is None:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(v, item) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, str) and value in {m.value for m in tp}:
            return value
        raise _Mismatch
    if tp in (dict, list):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value  # a type we do not check here: the config's own __post_init__ validates it


def _coerce_key(value, tp, key: str, section: str, ctx: _Context):
    """``value`` of ``key`` converted to ``tp``, or a ValueError naming the key, its section and the file."""
    try:
        return _coerce(value, tp)
    except _Mismatch:
        raise ValueError(
            f"'{key}' in {ctx.where(section)} must be {_describe_type(tp)}, got {type(value).__name__}: {value!r}"
        ) from None


def _suggest(key, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


class _Context:
    def __init__(self, file: str, recipe_dir: str, overridden: set):
        self.file = file
        self.recipe_dir = recipe_dir
        self.overridden = overridden

    def where(self, section: str) -> str:
        return f"section '{section}' of {self.file}" if section else f"the top level of {self.file}"


def _resolve_path(value: str, kind: str, dotted: str, ctx: _Context) -> str:
    if value is None:
        return None
    base = os.getcwd() if dotted in ctx.overridden else ctx.recipe_dir
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    candidate = os.path.normpath(os.path.join(base, expanded))
    if kind == "file":
        return candidate
    # a model / dataset reference: a Hub id ("org/name"), "packaged:...", or a local path
    if value.startswith(("./", "../", ".\\", "..\\")) or value in (".", "..") or os.path.exists(candidate):
        return candidate
    return value


def _build_section(cls, data, section: str, ctx: _Context):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(
            f"'{section}' must be a mapping of keys to values in {ctx.file}, got {type(data).__name__}: {data!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _type_hints(cls)
    for key in data:
        if key not in fields or key in ("path", "smoke") and cls is Recipe:
            valid = [k for k in fields if not (cls is Recipe and k in ("path", "smoke"))]
            raise ValueError(
                f"unknown key '{key}' in {ctx.where(section)}{_suggest(str(key), valid)}; "
                f"valid keys: {', '.join(valid)}"
            )
    values = {}
    for name, value in data.items():
        f = fields[name]
        dotted = f"{section}.{name}" if section else name
        tp = hints.get(name, Any)
        nested = _nested_dataclass(tp)
        if nested is not None and (isinstance(value, dict) or value is None):
            keep_none = value is None and _optional(tp)
            values[name] = None if keep_none else _build_section(nested, value, dotted, ctx)
            continue
        converted = _coerce_key(value, tp, name, section, ctx)
        kind = f.metadata.get("path")
        if kind and isinstance(converted, str):
            converted = _resolve_path(converted, kind, dotted, ctx)
        values[name] = converted
    missing = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in values
    ]
    if missing:
        raise ValueError(f"missing required key(s) {', '.join(repr(m) for m in missing)} in {ctx.where(section)}")
    return cls(**values)


def _optional(tp) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _nested_dataclass(tp):
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _check_args_dict(values: dict, allowed: dict, hints: dict, section: str, ctx: _Context, redirect: dict) -> dict:
    if not isinstance(values, dict):
        raise ValueError(f"'{section}' in {ctx.file} must be a mapping, got {type(values).__name__}: {values!r}")
    out = {}
    for key, value in values.items():
        if key in redirect:
            raise ValueError(f"key '{key}' is not allowed in {ctx.where(section)}: {redirect[key]}")
        if key not in allowed:
            raise ValueError(f"unknown key '{key}' in {ctx.where(section)}{_suggest(str(key), allowed)}")
        out[key] = _coerce_key(value, hints.get(key, Any), key, section, ctx)
    return out


# ---------------------------------------------------------------------------------------------- overrides
def parse_overrides(items) -> list:
    """``["a.b=1", ...]`` -> ``[("a.b", 1), ...]`` (values parsed with ``yaml.safe_load``)."""
    parsed = []
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value (e.g. training.num_train_epochs=1)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"override {item!r}: the key {key!r} is not a dotted name like training.learning_rate")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({exc})") from None
        parsed.append((key, value))
    return parsed


def apply_overrides(data: dict, overrides) -> dict:
    data = copy.deepcopy(data)
    for key, value in overrides:
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {key}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


# ---------------------------------------------------------------------------------------------- loading
def load_recipe(path, overrides=(), smoke_run: bool = False) -> Recipe:
    """Read, override, validate and (optionally) shrink a recipe. Raises ``ValueError`` on any mistake."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"recipe {path!r} is a directory, not a recipe file: pass a .yaml file, e.g. "
                         f"{os.path.join(path, 'recipe.yaml')!r}")
    if not os.path.isfile(path):
        raise ValueError(f"recipe file {path!r} does not exist")
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"recipe {path} is not UTF-8 text: byte 0x{raw[exc.start:exc.start + 1].hex()} at byte "
                         f"offset {exc.start} cannot be decoded; save the recipe as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    if overrides and isinstance(next(iter(overrides)), str):
        parsed = parse_overrides(overrides)
    else:
        parsed = list(overrides or [])
    data = apply_overrides(data, parsed)
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    ctx = _Context(path, os.path.dirname(os.path.abspath(path)), {k for k, _ in parsed})
    recipe = recipe_from_dict(data, ctx)
    recipe.path = os.path.abspath(path)
    if smoke_run:
        recipe = smoke(recipe)
    return recipe


def recipe_from_dict(data: dict, ctx: _Context | None = None) -> Recipe:
    ctx = ctx or _Context("<recipe>", os.getcwd(), set())
    data = dict(data)
    for section in ("distillation", "training"):
        if data.get(section) is None:
            data[section] = {}
    recipe = _build_section(Recipe, data, "", ctx)

    from .distillation_config import SpectralDistillationConfig

    hints = _type_hints(SpectralDistillationConfig)
    distill_fields = _distillation_only_fields()
    training_allowed = set(training_field_names())
    recipe.distillation = _check_args_dict(
        recipe.distillation, distill_fields, hints, "distillation", ctx,
        {k: "it is a training argument: put it in 'training'" for k in training_allowed},
    )
    recipe.training = _check_args_dict(
        recipe.training, training_allowed, hints, "training", ctx,
        {**_RESERVED_TRAINING,
         **{k: "it is a distillation setting: put it in 'distillation'" for k in distill_fields}},
    )
    if recipe.teacher.finetune is not None:
        recipe.teacher.finetune.args = _check_args_dict(
            recipe.teacher.finetune.args, training_allowed, hints, "teacher.finetune.args", ctx, _RESERVED_TRAINING
        )
    _validate(recipe, ctx)
    return recipe


def _validate(recipe: Recipe, ctx: _Context) -> None:
    from .tasks.registry import available_tasks

    if recipe.task not in available_tasks():
        raise ValueError(
            f"task {recipe.task!r} in {ctx.file} is unknown: available tasks are {', '.join(available_tasks())}"
        )
    if not recipe.name or any(c in recipe.name for c in "/\\"):
        raise ValueError(f"name {recipe.name!r} in {ctx.file} must be a non-empty name without slashes")
    teacher = recipe.teacher
    if bool(teacher.model) == bool(teacher.base):
        raise ValueError(
            f"section 'teacher' of {ctx.file} needs exactly one of 'model' (a fine-tuned classifier) or 'base' "
            "(a base model fine-tuned first, with 'finetune' settings)"
        )
    if teacher.model and teacher.finetune is not None:
        raise ValueError(
            f"section 'teacher' of {ctx.file}: 'finetune' goes with 'base', not with an already fine-tuned 'model'"
        )
    if teacher.base and teacher.finetune is None:
        teacher.finetune = FinetuneSection()
    _validate_student(recipe.student, ctx)
    _validate_data(recipe.data, ctx)
    extras = [k for k in ("labels_per_class", "transfer", "augment") if getattr(recipe.data, k) is not None]
    if recipe.task == "token-classification":  # unlabelled sentences, yes; per-class sampling and augmentation, no
        extras = [k for k in extras if k != "transfer"]
    if extras and recipe.task != "text-classification":
        raise ValueError(f"data.{extras[0]} in {ctx.file} is supported by the text-classification task only "
                         f"(this recipe's task is {recipe.task!r})")
    _validate_evaluation(recipe.evaluation, ctx)
    if recipe.hub.push_to_hub and not recipe.hub.hub_model_id:
        raise ValueError(f"hub.push_to_hub in {ctx.file} needs hub.hub_model_id (e.g. your-name/{recipe.name})")


def _validate_evaluation(evaluation: EvaluationSection, ctx: _Context) -> None:
    if evaluation.split not in ("test", "validation"):
        raise ValueError(f"evaluation.split in {ctx.file} must be 'test' or 'validation', got {evaluation.split!r}")
    margin = evaluation.recommend_margin
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"evaluation.recommend_margin in {ctx.file} must be a finite number of accuracy points "
                         f">= 0 (how far the no-KD baseline must lead on the validation split to be recommended), "
                         f"got {margin!r}")


def _validate_student(student: StudentSection, ctx: _Context) -> None:
    if student.init not in STUDENT_INITS:
        raise ValueError(f"student.init in {ctx.file} must be one of {', '.join(STUDENT_INITS)}, got {student.init!r}")
    if student.init == "pretrained" and not student.model:
        raise ValueError(f"student.init 'pretrained' in {ctx.file} needs student.model (a local path or Hub id)")
    if student.init != "pretrained" and student.model:
        raise ValueError(
            f"student.model in {ctx.file} is only used with student.init: pretrained (got init {student.init!r})"
        )
    if isinstance(student.init_layers, str):
        if student.init_layers not in INIT_LAYER_RULES:
            raise ValueError(
                f"student.init_layers in {ctx.file} must be one of {', '.join(INIT_LAYER_RULES)} or a list of teacher "
                f"layers, got {student.init_layers!r}"
            )
    else:
        layers = student.init_layers
        if not layers or any(i < 1 for i in layers) or len(set(layers)) != len(layers):
            raise ValueError(f"student.init_layers in {ctx.file} must be distinct teacher blocks >= 1, got {layers}")
        if student.num_layers is not None and student.num_layers != len(student.init_layers):
            raise ValueError(
                f"student.num_layers ({student.num_layers}) and student.init_layers ({student.init_layers}) "
                f"disagree in {ctx.file}"
            )
    if student.init == "teacher_layers" and student.num_layers is None and isinstance(student.init_layers, str):
        raise ValueError(
            f"student.init teacher_layers in {ctx.file} needs student.num_layers (or an explicit init_layers list)"
        )
    if student.num_layers is not None and student.num_layers < 1:
        raise ValueError(f"student.num_layers in {ctx.file} must be >= 1, got {student.num_layers}")


def _validate_data(data: DataSection, ctx: _Context) -> None:
    if not data.source and not data.train_file:
        raise ValueError(
            f"section 'data' of {ctx.file} needs 'source' (a Hub dataset id or a local file/dir) or 'train_file'"
        )
    if data.max_length < 1:
        raise ValueError(f"data.max_length in {ctx.file} must be >= 1, got {data.max_length}")
    if not 0.0 < data.validation_fraction < 1.0:
        raise ValueError(f"data.validation_fraction in {ctx.file} must be in (0, 1), got {data.validation_fraction}")
    for key in ("max_train_samples", "max_eval_samples", "labels_per_class"):
        value = getattr(data, key)
        if value is not None and value < 1:
            raise ValueError(f"data.{key} in {ctx.file} must be >= 1, got {value}")
    if data.unseen_tags not in UNSEEN_TAG_RULES:
        raise ValueError(f"data.unseen_tags in {ctx.file} must be one of {', '.join(UNSEEN_TAG_RULES)}, got "
                         f"{data.unseen_tags!r}")
    transfer = data.transfer
    if transfer is not None:
        if transfer.max_samples is not None and transfer.max_samples < 1:
            raise ValueError(f"data.transfer.max_samples in {ctx.file} must be >= 1, got {transfer.max_samples}")
        if transfer.source == "train" and data.labels_per_class is None:
            raise ValueError(f"data.transfer.source 'train' in {ctx.file} means the training texts that "
                             "data.labels_per_class leaves out: set data.labels_per_class too")


# ---------------------------------------------------------------------------------------------- smoke
SMOKE_TRAIN_SAMPLES = 256
SMOKE_EVAL_SAMPLES = 128
SMOKE_STEPS = 4
SMOKE_SPECTRAL_SAMPLES = {"selection_samples": 64, "dynamics_samples": 32}  # at most this many in a smoke run


def smoke(recipe: Recipe) -> Recipe:
    """Shrink a recipe to about a minute: a few hundred examples, a few steps per stage, every stage kept."""
    recipe = copy.deepcopy(recipe)
    recipe.smoke = True
    data = recipe.data
    data.max_train_samples = min(data.max_train_samples or SMOKE_TRAIN_SAMPLES, SMOKE_TRAIN_SAMPLES)
    data.max_eval_samples = min(data.max_eval_samples or SMOKE_EVAL_SAMPLES, SMOKE_EVAL_SAMPLES)
    data.max_length = min(data.max_length, 32)
    if data.transfer is not None:
        data.transfer.max_samples = min(data.transfer.max_samples or SMOKE_TRAIN_SAMPLES, SMOKE_TRAIN_SAMPLES)
    if data.augment is not None:
        data.augment = dataclasses.replace(data.augment, n_per_example=1)
    if recipe.teacher.finetune is not None:
        recipe.teacher.finetune.max_steps = SMOKE_STEPS
    recipe.training.update(max_steps=SMOKE_STEPS, logging_steps=2)
    recipe.training.pop("eval_steps", None)
    for name, cap in SMOKE_SPECTRAL_SAMPLES.items():
        recipe.distillation[name] = min(recipe.distillation_value(name), cap)
    return recipe
