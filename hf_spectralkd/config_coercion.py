"""Values a config file gives in the wrong type, checked by pydantic against the dataclass annotations: YAML 1.1
(PyYAML, ``HfArgumentParser.parse_yaml_file``) reads ``1e-4`` as a string and a bare ``no`` as ``False``, and the
command line gives dict fields as JSON strings. Recipes (:mod:`~hf_spectralkd.recipes`) use the same types."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

__all__ = ["Float", "Int", "coerce_numeric_strings", "fields_adapter", "parse_init_kwargs"]


def _not_bool(value):
    if isinstance(value, bool):  # pydantic's lax int / float read True as 1: a bare YAML `yes` is not a number
        raise PydanticCustomError("number_type", "Input should be a number, not a boolean")
    return value


def _whole_number(value):
    if isinstance(_not_bool(value), str) and not value.strip().lstrip("+-").isdigit():
        try:
            return float(value)  # "1e2" -> 100.0, which pydantic's int takes (its own parser reads "100" only)
        except ValueError:
            pass
    return value


Float = Annotated[float, BeforeValidator(_not_bool)]
Int = Annotated[int, BeforeValidator(_whole_number)]


def _choice(names: tuple):
    """A strategy (``Enum | str``) given as a boolean: YAML 1.1 reads a bare ``no`` as False, which means "no"."""

    def check(value):
        if value is False and "no" in names:
            return "no"
        if isinstance(value, bool):
            raise PydanticCustomError("choice_type", "Input should be one of {names}; YAML reads a bare yes / on / "
                                      "off as a boolean", {"names": ", ".join(repr(n) for n in names)})
        return value

    return BeforeValidator(check)


def _typed(hint):
    """``hint`` as pydantic should check it: Int / Float for int / float, a boolean strategy read as its name, and
    other dataclasses (accelerate's ParallelismConfig) left to their owner's checks."""
    if hint is int:
        return Int
    if hint is float:
        return Float
    if dataclasses.is_dataclass(hint):
        return Any
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args:
        return list[_typed(args[0])]
    if origin in (Union, types.UnionType):
        union = Union[tuple(_typed(a) for a in args)]  # noqa: UP007 - built from a tuple
        names = tuple(m.value for a in args if isinstance(a, type) and issubclass(a, enum.Enum) for m in a)
        return Annotated[union, _choice(names)] if names else union
    return hint


@functools.cache
def fields_adapter(cls, names: frozenset) -> TypeAdapter:
    """A pydantic adapter of a dict of some of the fields ``names`` of the dataclass ``cls`` (each optional, no
    other key allowed), every value checked against its field's annotation."""
    hints = typing.get_type_hints(cls)
    settings = TypedDict(f"{cls.__name__}Fields", {n: _typed(hints[n]) for n in sorted(names)}, total=False)
    settings.__pydantic_config__ = ConfigDict(extra="forbid")
    return TypeAdapter(settings)


@functools.cache
def _numeric_fields(cls) -> dict:
    """``name -> int or float`` for the fields of ``cls`` typed ``int``, ``float`` or ``Optional`` of one of them
    (unions that also accept ``str`` or ``bool`` are left alone: a string is a valid value there)."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if typing.get_origin(hint) in (Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else None
        if hint in (int, float):
            found[f.name] = hint
    return found


def coerce_numeric_strings(config) -> None:
    """Turn string values of ``config``'s ``int`` / ``float`` fields into numbers, in place (``"1e-4"`` -> ``0.0001``);
    a string that is not a number raises ``ValueError`` naming the field."""
    kinds = _numeric_fields(type(config))
    strings = {name: getattr(config, name) for name in kinds if isinstance(getattr(config, name), str)}
    if not strings:
        return
    try:
        numbers = fields_adapter(type(config), frozenset(kinds)).validate_python(strings)
    except ValidationError as exc:
        name = exc.errors()[0]["loc"][0]
        kind = "number" if kinds[name] is float else "whole number"
        raise ValueError(f"{name} must be a {kind}, got the string {strings[name]!r}") from None
    for name, number in numbers.items():
        setattr(config, name, number)


def parse_init_kwargs(value) -> dict | None:
    """``teacher_model_init_kwargs`` as a dict: a JSON string (command line) is parsed; anything else but a dict
    or None is an error."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"teacher_model_init_kwargs must be a dict or a JSON object string, got {value!r}: {exc}"
                             ) from None
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(f"teacher_model_init_kwargs must be a dict or a JSON object string, got {value!r}")
