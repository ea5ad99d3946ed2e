"""Recipe files: YAML validated by pydantic into dataclasses before any work starts.

A recipe has the sections ``name``, ``task``, ``teacher``, ``student``, ``data``, ``distillation``,
``training``, ``evaluation``, ``output`` and ``hub`` (see ``recipes/clinc150_minilm.yaml``). Loading:

- one YAML loader, :class:`RecipeLoader` (``yaml.SafeLoader``, never executes anything), reads ``1e-4`` as a float
  (YAML 1.1 reads it as a string), refuses a key given twice (naming key and line) and an alias bomb (aliases that
  expand past :data:`MAX_YAML_NODES` values);
- pydantic checks every value against the dataclass annotations (``distillation`` / ``training`` /
  ``teacher.finetune.args``: against :class:`~hf_spectralkd.SpectralDistillationConfig`'s fields) and a mistake is
  reported at its dotted path (``unknown key 'distillation.betaa' ... (did you mean 'distillation.beta'?)``); a
  number given as a string (``"1e-4"``) is read as one, and a bare ``no`` for a TrainingArguments strategy
  (``eval_strategy: no``) is the strategy ``"no"``;
- the domain rules (ranges, one of ``teacher.model`` / ``teacher.base``, ...) are checked after, in ``_validate``;
- relative paths in the file resolve against the recipe file's directory (paths given as command-line
  overrides and ``output.dir`` resolve against the current directory);
- ``key.sub=value`` overrides (value parsed as YAML by the same loader) are applied before validation;
- :func:`smoke` shrinks any recipe to a run of about a minute that still runs every stage.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

from .augment import AugmentConfig
from .config_coercion import Float, Int, fields_adapter

__all__ = [
    "Recipe",
    "TeacherSection",
    "FinetuneSection",
    "StudentSection",
    "DataSection",
    "EvaluationSection",
    "OutputSection",
    "HubSection",
    "RecipeLoader",
    "load_recipe",
    "load_yaml",
    "parse_overrides",
    "apply_overrides",
    "smoke",
    "distillation_field_names",
    "distillation_default",
    "training_field_names",
]

STUDENT_INITS = ("teacher_layers", "pretrained", "config")
INIT_LAYER_RULES = ("uniform", "selected", "topk", "ends", "entropy", "last")
UNSEEN_TAG_RULES = ("error", "keep")  # data.unseen_tags (token-classification)
MAX_RECIPE_BYTES = 1 << 20  # a recipe is a small text file
MAX_YAML_NODES = 100_000  # values of a document once its aliases are expanded (pydantic walks every one)


# ---------------------------------------------------------------------------------------------- YAML
class RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-4`` / ``1.0e5`` as floats (YAML 1.2; YAML 1.1 wants a dot and a signed
    exponent), refuses duplicate keys, and counts the values aliases expand to (a bomb fails before it is built)."""

    def __init__(self, stream, name: str = "<recipe>"):
        super().__init__(stream)
        self.name = name  # named in the error marks
        self._values = 0

    def _count(self, values: int, mark) -> None:
        self._values += values
        if self._values > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"the document expands to more than {MAX_YAML_NODES} values (an alias bomb?)", mark)

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            target = self.anchors.get(anchor)
            values = getattr(target, "expanded_values", None) if target is not None else 1
            if values is None:
                raise yaml.composer.ComposerError(None, None, f"alias *{anchor} is inside its own anchor", mark)
            self._count(values, mark)
            return super().compose_node(parent, index)
        before = self._values
        node = super().compose_node(parent, index)
        self._count(1, mark)
        node.expanded_values = self._values - before
        return node

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys given after it win, as in YAML
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: SafeConstructor says so below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first})", key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, name: str = "<recipe>"):
    """One YAML document read with :class:`RecipeLoader` (``name`` is named in the error marks)."""
    loader = RecipeLoader(text, name)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_forbid_extra = with_config(ConfigDict(extra="forbid"))  # an unknown key is an error (nested dataclasses too)


# ---------------------------------------------------------------------------------------------- sections
@_forbid_extra
@dataclass
class FinetuneSection:
    """How the teacher base is fine-tuned on the training split."""

    epochs: Float = 3.0
    learning_rate: Float = 5e-5
    batch_size: Int = 32
    weight_decay: Float = 0.0
    warmup_steps: Float = 0.0
    max_steps: Int = -1
    gradient_accumulation_steps: Int = 1
    seed: Int = 42
    select_best: bool = True  # evaluate every epoch on validation, keep the best epoch, stop early (epochs = budget)
    patience: Int = 2  # select_best: stop after this many epochs without a better validation accuracy
    args: dict = field(default_factory=dict)  # any other TrainingArguments field


@_forbid_extra
@dataclass
class TeacherSection:
    model: str | None = field(default=None, metadata={"path": "model"})  # a fine-tuned classifier
    base: str | None = field(default=None, metadata={"path": "model"})  # a base model to fine-tune
    finetune: FinetuneSection | None = None
    config: dict = field(default_factory=dict)  # model-construction kwargs (image task: timm.create_model args)
    cache: bool = False  # distillation reads the teacher's outputs from <out>/teacher_cache instead of re-running it


@_forbid_extra
@dataclass
class StudentSection:
    init: str = "teacher_layers"
    num_layers: Int | None = None
    init_layers: str | list[Int] = "uniform"
    model: str | None = field(default=None, metadata={"path": "model"})
    config: dict = field(default_factory=dict)
    peft: dict | None = None  # filled in by the scale-out work (LoRA students)


@_forbid_extra
@dataclass
class TransferSection:
    """Unlabelled texts the teacher labels for the student (``data.transfer``); labels in the source are ignored."""

    source: str = field(metadata={"path": "model"})  # a file, a directory, a Hub id, or `train` (see labels_per_class)
    text_column: str | None = None  # default: data.text_column (token-classification: data.tokens_column)
    split: str = "train"
    max_samples: Int | None = None


@_forbid_extra
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
    max_length: Int = 128
    max_train_samples: Int | None = None
    max_eval_samples: Int | None = None
    validation_fraction: Float = 0.1
    seed: Int = 42
    labels_per_class: Int | None = None  # keep this many labelled training rows per class (low-label regime)
    transfer: TransferSection | None = None  # unlabelled texts the teacher labels (KD and L_freq only)
    augment: AugmentConfig | None = None  # augmented copies of the labelled training texts, as transfer rows
    name: str | None = None  # dataset name in results.json / the model card
    license: str | None = None
    citation: str | None = None


@_forbid_extra
@dataclass
class EvaluationSection:
    split: str = "test"
    baseline: bool = True
    batch_size: Int | None = None
    # the no-KD baseline is recommended over the distilled student only when it leads by more than this many points
    # of validation accuracy
    recommend_margin: Float = 0.0


@_forbid_extra
@dataclass
class OutputSection:
    dir: str | None = None  # default runs/<name>, relative to the current directory


@_forbid_extra
@dataclass
class HubSection:
    push_to_hub: bool = False
    hub_model_id: str | None = None
    private: bool = False


@_forbid_extra
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
    # distillation.candidates: students trained with these overrides of the distillation section, the best on the
    # validation split kept (set by recipe_from_dict from the file's distillation.candidates; empty: one student)
    candidates: list = field(default_factory=list)

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
_SETTINGS = ("distillation", "training", "teacher.finetune.args")  # dicts of SpectralDistillationConfig fields
_INTERNAL = ("path", "smoke", "candidates")  # Recipe fields load_recipe sets, not the file (candidates: see
# _candidates; the file gives them as distillation.candidates)
MAX_CANDIDATES = 8


def _section_keys(section: str) -> list:
    """The keys allowed in ``section`` (a dotted path, ``""`` for the top level)."""
    if section == "distillation":
        return distillation_field_names()
    if section in _SETTINGS:
        return [name for name in training_field_names() if name not in _RESERVED_TRAINING]
    cls = Recipe
    for part in filter(None, section.split(".")):
        hint = typing.get_type_hints(cls)[part]
        cls = next(a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a))
    return [f.name for f in dataclasses.fields(cls) if cls is not Recipe or f.name not in _INTERNAL]


def _settings(values: dict, section: str, ctx: _Context) -> dict:
    """``distillation`` / ``training`` / ``teacher.finetune.args`` checked against SpectralDistillationConfig."""
    from .distillation_config import SpectralDistillationConfig

    adapter = fields_adapter(SpectralDistillationConfig, frozenset(_section_keys(section)))
    try:
        checked = adapter.validate_python(values)
    except ValidationError as exc:
        raise ValueError(_describe(exc, values, section, ctx)) from None
    return {key: checked[key] for key in values}  # in the file's order


# ---------------------------------------------------------------------------------------------- errors
class _Context(typing.NamedTuple):
    file: str  # named in every message
    recipe_dir: str  # relative paths in the file resolve against it
    overridden: set  # dotted keys given on the command line (their paths resolve against the current directory)


def _unknown_key(section: str, key, ctx: _Context) -> str:
    dotted = f"{section}.{key}" if section else str(key)
    redirect = _RESERVED_TRAINING.get(key) if section in ("training", "teacher.finetune.args") else None
    if section == "training" and key in _distillation_only_fields():
        redirect = "it is a distillation setting: put it in 'distillation'"
    if section == "distillation" and key in training_field_names():
        redirect = "it is a training argument: put it in 'training'"
    if redirect:
        return f"'{dotted}' is not allowed in {ctx.file}: {redirect}"
    valid = _section_keys(section)
    close = [f"{section}.{c}" if section else c for c in difflib.get_close_matches(str(key), valid, n=3, cutoff=0.6)]
    message = f"unknown key '{dotted}' in {ctx.file}"
    if close:
        message += f" (did you mean {', '.join(repr(c) for c in close)}?)"
    if section not in _SETTINGS:  # (not the hundred TrainingArguments fields)
        message += f"; valid keys{f' of {section!r}' if section else ''}: {', '.join(valid)}"
    return message


def _locate(error: dict, data) -> tuple:
    """The path of ``error`` in ``data`` (pydantic's ``loc`` without the union members it names) and its value."""
    path, node = [], data
    for i, part in enumerate(error["loc"]):
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part]
        elif error["type"].startswith("missing") and i == len(error["loc"]) - 1:
            path.append(part)
        else:  # a union member ("str", "list[int]"): the error is about this value
            break
    return tuple(path), node


def _describe(exc: ValidationError, data: dict, section: str, ctx: _Context) -> str:
    """pydantic's errors, one line per key, each naming the key by its dotted path and the file."""
    found = {}
    for error in exc.errors():
        path, value = _locate(error, data)
        found.setdefault(".".join(str(p) for p in (section, *path) if p != ""), []).append((error, value))
    lines = []
    for dotted, errors in found.items():
        error, value = errors[0]
        parent, _, key = dotted.rpartition(".")
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            lines.append(_unknown_key(parent, key, ctx))
        elif error["type"].startswith("missing"):
            lines.append(f"missing required key '{dotted}' in {ctx.file}")
        elif error["type"] in ("dataclass_type", "dict_type"):
            lines.append(f"'{dotted}' in {ctx.file} must be a mapping of keys to values (got "
                         f"{type(value).__name__}: {value!r})")
        elif error["msg"].startswith("Input should be "):
            wanted = dict.fromkeys(e["msg"].removeprefix("Input should be ") for e, _ in errors)
            lines.append(f"'{dotted}' in {ctx.file} must be {' or '.join(wanted)} (got {type(value).__name__}: "
                         f"{value!r})")
        else:  # a ValueError of a dataclass's own checks (data.augment)
            lines.append(f"'{dotted}' in {ctx.file}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _resolve_path(value: str, kind: str, dotted: str, ctx: _Context) -> str:
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


def _resolve_paths(section, prefix: str, ctx: _Context) -> None:
    """Resolve the path fields (``metadata={"path": ...}``) of ``section`` and its subsections, in place."""
    for f in dataclasses.fields(section):
        value, dotted = getattr(section, f.name), f"{prefix}.{f.name}" if prefix else f.name
        if f.metadata.get("path") and isinstance(value, str):
            setattr(section, f.name, _resolve_path(value, f.metadata["path"], dotted, ctx))
        elif dataclasses.is_dataclass(value):
            _resolve_paths(value, dotted, ctx)


# ---------------------------------------------------------------------------------------------- overrides
def parse_overrides(items) -> list:
    """``["a.b=1", ...]`` -> ``[("a.b", 1), ...]`` (values parsed as YAML, by :class:`RecipeLoader`)."""
    parsed = []
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value (e.g. training.num_train_epochs=1)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ValueError(f"override {item!r}: the key {key!r} is not a dotted name like training.learning_rate")
        try:
            value = load_yaml(raw, f"override {key}") if raw.strip() else None
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
    if os.path.getsize(path) > MAX_RECIPE_BYTES:
        raise ValueError(f"recipe {path} is {os.path.getsize(path)} bytes: a recipe is a small YAML file (at most "
                         f"{MAX_RECIPE_BYTES} bytes)")
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"recipe {path} is not UTF-8 text: byte 0x{raw[exc.start:exc.start + 1].hex()} at byte "
                         f"offset {exc.start} cannot be decoded; save the recipe as UTF-8") from None
    try:
        data = load_yaml(text, path)
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ValueError(f"recipe {path} is nested too deeply to be a recipe") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    if overrides and isinstance(next(iter(overrides)), str):
        parsed = parse_overrides(overrides)
    else:
        parsed = list(overrides or [])
    data = _without_facts_of_other_data(apply_overrides(data, parsed), {k for k, _ in parsed})
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    ctx = _Context(path, os.path.dirname(os.path.abspath(path)), {k for k, _ in parsed})
    recipe = recipe_from_dict(data, ctx)
    recipe.path = os.path.abspath(path)
    if smoke_run:
        recipe = smoke(recipe)
    return recipe


DATA_LOCATION_KEYS = ("source", "train_file", "validation_file", "test_file")
DATA_FACT_KEYS = ("name", "license", "citation")


def _without_facts_of_other_data(data: dict, overridden: set) -> dict:
    """The recipe without the file's ``data.name`` / ``license`` / ``citation`` when an override points the run at
    other data (``data.source=...``, a split file) and does not restate them: they describe the file's own data, and
    the card states the facts of the data the run reads (its folder's dataset card) or none, never another's."""
    section = data.get("data")
    moved = [k for k in overridden if k in {f"data.{key}" for key in DATA_LOCATION_KEYS}]
    if not moved or "data" in overridden or not isinstance(section, dict):
        return data
    dropped = [key for key in DATA_FACT_KEYS if section.get(key) is not None and f"data.{key}" not in overridden]
    if dropped:
        import warnings

        one = len(dropped) == 1
        warnings.warn(f"{sorted(moved)[0]} was overridden: the recipe's {', '.join(f'data.{k}' for k in dropped)} "
                      f"describe{'s' if one else ''} its own data and {'is' if one else 'are'} not used (the card "
                      f"states the facts of the data read; set {', '.join(f'data.{k}=...' for k in dropped)} to "
                      "state them)", UserWarning, stacklevel=3)
        data = {**data, "data": {k: v for k, v in section.items() if k not in dropped}}
    return data


@functools.cache
def _recipe_adapter() -> TypeAdapter:
    return TypeAdapter(Recipe)


def recipe_from_dict(data: dict, ctx: _Context | None = None) -> Recipe:
    ctx = ctx or _Context("<recipe>", os.getcwd(), set())
    sections = {f.name for f in dataclasses.fields(Recipe) if f.name not in ("name", "task", *_INTERNAL)}
    data = {key: {} if value is None and key in sections else value for key, value in data.items()}  # `student:`
    internal = [key for key in _INTERNAL if key in data]
    if internal:
        raise ValueError(_unknown_key("", internal[0], ctx))
    candidates = None
    if isinstance(data.get("distillation"), dict) and "candidates" in data["distillation"]:
        data = {**data, "distillation": dict(data["distillation"])}
        candidates = data["distillation"].pop("candidates")
    try:
        recipe = _recipe_adapter().validate_python(data)
    except ValidationError as exc:
        raise ValueError(_describe(exc, data, "", ctx)) from None
    recipe.candidates = _candidates(candidates, ctx)
    recipe.distillation = _settings(recipe.distillation, "distillation", ctx)
    recipe.training = _settings(recipe.training, "training", ctx)
    if recipe.teacher.finetune is not None:
        recipe.teacher.finetune.args = _settings(recipe.teacher.finetune.args, "teacher.finetune.args", ctx)
    _resolve_paths(recipe, "", ctx)
    _validate(recipe, ctx)
    return recipe


def _candidates(values, ctx: _Context) -> list:
    """``distillation.candidates``: a list of mappings, each a set of distillation overrides (``{}`` = the section as
    it is), checked as the section is; at most :data:`MAX_CANDIDATES`, no two alike."""
    if values is None:
        return []
    if not isinstance(values, list) or not values:
        raise ValueError(f"distillation.candidates in {ctx.file} must be a non-empty list of mappings of distillation "
                         f"settings (e.g. [{{}}, {{beta: 0}}]), got {values!r}")
    if len(values) > MAX_CANDIDATES:
        raise ValueError(f"distillation.candidates in {ctx.file} has {len(values)} entries; at most {MAX_CANDIDATES} "
                         "(each one trains a student)")
    checked = []
    for index, item in enumerate(values):
        where = f"distillation.candidates[{index}]"
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise ValueError(f"{where} in {ctx.file} must be a mapping of distillation settings, got {item!r}")
        if "candidates" in item:
            raise ValueError(f"{where} in {ctx.file}: a candidate cannot hold candidates")
        try:
            checked.append(_settings(item, "distillation", ctx))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    seen = [json.dumps(c, sort_keys=True, default=str) for c in checked]
    duplicate = next((i for i, c in enumerate(seen) if c in seen[:i]), None)
    if duplicate is not None:
        raise ValueError(f"distillation.candidates[{duplicate}] in {ctx.file} repeats candidate "
                         f"{seen.index(seen[duplicate])}: {seen[duplicate]}")
    return checked


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
    _validate_seeds(recipe, ctx)
    if recipe.hub.push_to_hub and not recipe.hub.hub_model_id:
        raise ValueError(f"hub.push_to_hub in {ctx.file} needs hub.hub_model_id (e.g. your-name/{recipe.name})")


def _validate_evaluation(evaluation: EvaluationSection, ctx: _Context) -> None:
    if evaluation.split not in ("test", "validation"):
        raise ValueError(f"evaluation.split in {ctx.file} must be 'test' or 'validation', got {evaluation.split!r}")
    if evaluation.batch_size is not None and evaluation.batch_size < 1:
        raise ValueError(f"evaluation.batch_size in {ctx.file} must be >= 1, got {evaluation.batch_size} (leave it "
                         "unset or null for the training's per_device_eval_batch_size, 128 by default)")
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
    _check_seed(data.seed, "data.seed", ctx)
    if data.label_names is not None:
        names = list(data.label_names)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if not names or repeated:
            detail = "is empty" if not names else (
                f"lists {', '.join(f'{n!r} {names.count(n)} times' for n in repeated)}")
            raise ValueError(f"data.label_names in {ctx.file} {detail}: it is the model's classes in id order, each "
                             "named once (leave it unset to use the sorted labels of the training split)")
    transfer = data.transfer
    if transfer is not None:
        if transfer.max_samples is not None and transfer.max_samples < 1:
            raise ValueError(f"data.transfer.max_samples in {ctx.file} must be >= 1, got {transfer.max_samples}")
        if transfer.source == "train" and data.labels_per_class is None:
            raise ValueError(f"data.transfer.source 'train' in {ctx.file} means the training texts that "
                             "data.labels_per_class leaves out: set data.labels_per_class too")


def _check_seed(value, dotted: str, ctx: _Context) -> None:
    from .numbers import check_seed

    check_seed(value, f"{dotted} in {ctx.file}")


def _validate_seeds(recipe: Recipe, ctx: _Context) -> None:
    """Every seed in 0..2**32-1 (numpy's range): a bad one would fail after the earlier stages ran."""
    settings = {"training": recipe.training, "distillation": recipe.distillation}
    if recipe.teacher.finetune is not None:
        _check_seed(recipe.teacher.finetune.seed, "teacher.finetune.seed", ctx)
        settings["teacher.finetune.args"] = recipe.teacher.finetune.args
    for section, values in settings.items():
        for key in ("seed", "data_seed"):
            if key in values:
                _check_seed(values[key], f"{section}.{key}", ctx)


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
