"""Typed settings with limits: a settings dataclass checks itself when built, so a value from the command line,
a YAML file, a checkpoint or an ONNX file's metadata gets the same check and the same message.

Strict on purpose: ``"0.5"`` is not a number and ``1`` is not a boolean (Hydra already turns ``key=0.5`` on the
command line into a float); an int is accepted where a float belongs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

Limits = Mapping[str, tuple[float, float]]
"""field name -> (lowest, highest) allowed value, both included."""

INPUT_SIZE_LIMITS = (32, 4096)
"""The square side the model sees at validation and inference, a multiple of ``INPUT_STRIDE``: 4096 needs about
2 GB for a ResNet-18 DBNet's activations; a checkpoint asking for 100000 would need hundreds."""
INPUT_STRIDE = 32


class SettingsError(ValueError):
    """A setting of the wrong type or out of its range; the message names the key, the value and what is allowed."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(hint: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(hint, str(hint))


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return isinstance(value, tuple) and len(value) == len(args) and all(map(_fits, value, args))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_value(key: str, value: Any, hint: Any, limits: tuple[float, float] | None = None) -> None:
    """SettingsError unless ``value`` has type ``hint`` and, for a number, lies within ``limits``."""
    if not _fits(value, hint):
        wanted = " or ".join(_type_name(a) for a in typing.get_args(hint)) or _type_name(hint)
        raise SettingsError(f"{key} must be {wanted}, got {value!r}")
    if limits is not None and isinstance(value, int | float):
        low, high = limits
        if not (math.isfinite(value) and low <= value <= high):
            raise SettingsError(f"{key} must be between {low} and {high}, got {value!r}")


def check_settings(settings: Any, section: str, limits: Limits | None = None) -> None:
    """Check every field of the dataclass ``settings`` against its type hint and ``limits``; keys in messages are
    ``section.field`` as on the command line."""
    hints = _hints(type(settings))
    for f in dataclasses.fields(settings):
        check_value(f"{section}.{f.name}", getattr(settings, f.name), hints[f.name], (limits or {}).get(f.name))


def check_input_size(value: Any, key: str) -> int:
    """``value`` as the model's input size, within ``INPUT_SIZE_LIMITS``."""
    check_value(key, value, int, INPUT_SIZE_LIMITS)
    if value % INPUT_STRIDE:
        raise SettingsError(f"{key} must be a multiple of {INPUT_STRIDE}, got {value}")
    return value
