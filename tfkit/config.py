"""Typed overrides for dataclass configs: `--set a.b=value`.

Configs are frozen dataclasses (possibly nested). `apply_overrides(cfg, ["lr=0.1"])` returns a new
config; unknown keys and values that do not parse as the field's type raise `ConfigError` with
the list of valid keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from tfkit.errors import TfkitError

__all__ = ["ConfigError", "apply_overrides", "replace_path", "to_dict", "field_names",
           "require_at_least"]


class ConfigError(TfkitError, ValueError):
    """A config override names an unknown field or a value of the wrong type."""


def require_at_least(cfg: Any, names: Iterable[str], minimum: int = 1) -> None:
    """Raises ConfigError unless each named field of `cfg` (a number, or a sequence of numbers
    whose every item counts) is at least `minimum`; for a config's `__post_init__`."""
    for name in names:
        value = getattr(cfg, name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(v < minimum for v in values):
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) dataclass config."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def field_names(cfg: Any, prefix: str = "") -> list[str]:
    """Every settable dotted key of a (nested) dataclass config."""
    names = []
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not _is_optional(hints[f.name]):
            names.extend(field_names(value, f"{prefix}{f.name}."))
        else:
            names.append(prefix + f.name)
    return names


def _is_optional(tp: Any) -> bool:
    return _origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp)


def _parse(text: str, tp: Any, key: str) -> Any:
    """Parses `text` as a value of type `tp`, or raises ConfigError."""
    origin = _origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse(text, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        if len(errors) == 1:  # one type besides None: its own message (e.g. "finite")
            raise ConfigError(errors[0] + " (or None)")
        raise ConfigError(f"{key}: cannot parse {text!r} as {tp}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ConfigError(f"{key}: {text!r} is not one of {list(choices)}")
    if origin in (tuple, list):
        args = typing.get_args(tp)
        item_tp = args[0] if args else str
        parts = [p.strip() for p in text.strip("()[] ").split(",") if p.strip()]
        values = [_parse(p, item_tp, key) for p in parts]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean (true/false), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
        if not math.isfinite(value):  # nan/inf: no field means it (a NaN run, no resume)
            raise ConfigError(f"{key}: expected a finite number, got {text!r}")
        return value
    if tp is str:
        return text
    raise ConfigError(f"{key}: fields of type {tp} cannot be set from the command line")


def _check_value(value: Any, tp: Any, key: str) -> Any:
    """Type-checks a Python value (from a Mapping override) by round-tripping through text."""
    if isinstance(value, str):
        return _parse(value, tp, key)
    if isinstance(value, (list, tuple)):
        return _parse(",".join(str(v) for v in value), tp, key)
    return _parse(str(value), tp, key)


def replace_path(cfg: Any, key: str, value: Any, _prefix: str = "") -> Any:
    """Returns `cfg` with the dotted field `key` set to `value` (parsed and type-checked)."""
    head, _, rest = key.partition(".")
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    if head not in fields:
        raise ConfigError(
            f"unknown config key {_prefix + key!r} for {type(cfg).__name__}; valid keys: "
            + ", ".join(field_names(cfg, _prefix))
        )
    hints = typing.get_type_hints(type(cfg))
    current = getattr(cfg, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{_prefix + head!r} is not a nested config; cannot set "
                              f"{_prefix + key!r}")
        return dataclasses.replace(
            cfg, **{head: replace_path(current, rest, value, f"{_prefix}{head}.")})
    return dataclasses.replace(cfg, **{head: _check_value(value, hints[head], _prefix + key)})


def apply_overrides(cfg: Any, overrides: Iterable[str] | Mapping[str, Any] = ()) -> Any:
    """Applies `key=value` strings (or a mapping) to a frozen dataclass config."""
    items: Iterable[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = overrides.items()
    else:
        pairs = []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value")
            k, v = item.split("=", 1)
            pairs.append((k.strip(), v.strip()))
        items = pairs
    for key, value in items:
        cfg = replace_path(cfg, key, value)
    return cfg
