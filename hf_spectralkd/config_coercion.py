"""Values a config file gives in the wrong type: YAML 1.1 (PyYAML, ``HfArgumentParser.parse_yaml_file``) reads
``1e-4`` and ``9e-1`` as strings, and the command line gives dict fields as JSON strings."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing

__all__ = ["coerce_numeric_strings", "parse_init_kwargs"]


@functools.cache
def _numeric_fields(cls) -> tuple:
    """``(name, int or float)`` of the fields of ``cls`` typed ``int``, ``float`` or ``Optional`` of one of them
    (unions that also accept ``str`` or ``bool`` are left alone: a string is a valid value there)."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else None
        if hint in (int, float):
            found.append((f.name, hint))
    return tuple(found)


def _to_number(name: str, value: str, kind: type):
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError(
            f"{name} must be a {'number' if kind is float else 'whole number'}, got the string {value!r}"
        ) from None
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(number)
    return number


def coerce_numeric_strings(config) -> None:
    """Turn string values of ``config``'s ``int`` / ``float`` fields into numbers, in place (``"1e-4"`` -> ``0.0001``);
    a string that is not a number raises ``ValueError`` naming the field."""
    for name, kind in _numeric_fields(type(config)):
        value = getattr(config, name)
        if isinstance(value, str):
            setattr(config, name, _to_number(name, value, kind))


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
