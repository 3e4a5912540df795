"""Typed YAML reading: a raw mapping becomes nested dataclasses, or a clear error.

Every value is converted to its field's annotated type (``bool``, ``int``, ``float``, ``str``,
fixed or open tuples, ``Literal``, unions with ``None``); an unknown key, a wrong type or a
malformed file raises :class:`~ssformer.errors.ConfigError` naming the file, the key path and
what is expected, with a "did you mean ...?" for near-misses. Generic: it knows the schema only
through the dataclasses it is given.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ssformer.config.schema import SWEEP_KEYS, yaml_fields
from ssformer.errors import ConfigError

__all__ = ["canonical_key_path", "parse_section", "read_raw"]


def read_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file as a raw mapping (no validation)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error}") from error
    from ssformer.config.strict_yaml import DuplicateKeyError, load_strict

    try:
        raw = load_strict(text)
    except DuplicateKeyError as error:
        raise ConfigError(f"config file {str(path)!r}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of keys (DEVICE, MODEL, ...), "
            f"not {type(raw).__name__}"
        )
    return raw


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _suggest(key: str, options: Sequence[str]) -> str:
    by_upper = {o.upper(): o for o in options}
    if key.upper() in by_upper:
        return f" Did you mean {by_upper[key.upper()]}?"
    close = difflib.get_close_matches(key.upper(), list(by_upper), n=1, cutoff=0.6)
    return f" Did you mean {by_upper[close[0]]}?" if close else ""


def canonical_key_path(key: str, where: str, root: type) -> list[str]:
    """Validate a dotted key path against the schema dataclass ``root`` (for overrides)."""
    parts = [p for p in key.split(".") if p]
    if not parts:
        raise ConfigError(f"{where}: empty key")
    cls: type | None = root
    done: list[str] = []
    for part in parts:
        if cls is None:
            raise ConfigError(f"{where}: {'.'.join(done)} is a value, not a section")
        fields = yaml_fields(cls)
        if part not in fields:
            prefix = ".".join(done) + "." if done else ""
            suggestion = _suggest(part, list(fields))
            if suggestion:
                suggestion = suggestion.replace("mean ", f"mean {prefix}")
            raise ConfigError(f"{where}: unknown key {prefix}{part}.{suggestion}")
        done.append(part)
        tp = _hints(cls)[fields[part].name]
        cls = tp if dataclasses.is_dataclass(tp) else None
    return done


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        plural = {
            bool: "true/false values",
            int: "integers",
            float: "finite numbers",
            str: "strings",
        }
        item = plural.get(args[0], _type_name(args[0]))
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {item}"
        return f"a list of {len(args)} {item}"
    if tp is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}.get(
        tp, str(tp)
    )


class _Invalid(Exception):
    pass


def _convert(value: Any, tp: Any) -> Any:
    """Convert a YAML value to type ``tp`` or raise :class:`_Invalid`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg)
            except _Invalid:
                continue
        raise _Invalid
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Invalid
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _Invalid
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Invalid
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if tp is type(None):
        if value is None:
            return None
        raise _Invalid
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Invalid
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Invalid
    if tp is float:  # finite only: nan and inf (YAML .nan, .inf, "nan") are refused
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                raise _Invalid from None
        else:
            raise _Invalid
        if not math.isfinite(number):
            raise _Invalid
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Invalid
    raise TypeError(f"unsupported config field type {tp!r}")


def parse_section(cls: type, raw: Any, path: str, source: str) -> Any:
    where = path or "the top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: {where} must be a mapping of keys, not {type(raw).__name__} {raw!r}"
        )
    fields = yaml_fields(cls)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            suggestion = _suggest(str(key), list(fields))
            if suggestion and path:
                suggestion = suggestion.replace("mean ", f"mean {path}.")
            raise ConfigError(
                f"{source}: unknown key {key_path}.{suggestion} Known keys in {where}: "
                f"{', '.join(fields)}"
            )
        f = fields[key]
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = parse_section(tp, value, key_path, source)
            continue
        try:
            kwargs[f.name] = _convert(value, tp)
        except _Invalid:
            if isinstance(value, list) and key_path in SWEEP_KEYS:
                raise ConfigError(
                    f"{source}: {key_path} is a list (a sweep); load it with load_configs, or run "
                    f"`ssformer sweep --cfg {source}`"
                ) from None
            raise ConfigError(
                f"{source}: {key_path} must be {_type_name(tp)}, got {value!r}"
            ) from None
    return cls(**kwargs)
