"""Run configs in TOML: read with the standard library's ``tomllib`` and validated.

A config is a flat TOML table whose keys are :class:`~bayesmeta.runs.config.RunConfig`'s
fields, for example::

    learner = "bayesian_maml"
    data = "sinusoid"
    k_support = 5
    iterations = 20000
    hidden = [40, 40]

Keys left out keep their defaults. An unknown key, a value of the wrong type, an
invalid value, or a key that the chosen learner or data source does not use (say
``inner_lr`` for ``learner = "protonet"``) raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from bayesmeta.errors import BayesmetaError
from bayesmeta.runs.config import RunConfig, applies
from bayesmeta.runs.renames import upgrade_settings

__all__ = ["ConfigError", "load_config", "parse_config", "read_config"]


class ConfigError(BayesmetaError, ValueError):
    """A config file is unreadable, or a key is unknown or has a bad value."""


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run config.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or a key is unknown, invalid or
        unused by the chosen learner and data.

    """
    return parse_config(read_config(path), source=str(path))


def read_config(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file, unvalidated (validate with :func:`parse_config`).

    A relative ``path`` (a data file) or ``source`` (a transfer run's source) is
    resolved against the config file's folder.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"no config file at {path}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
    for key in ("path", "source"):
        named = raw.get(key)
        if isinstance(named, str) and not Path(named).is_absolute():
            # a file named relative to the config file, so that a config works from anywhere
            raw[key] = str((path.parent / named).resolve())
    return raw


def parse_config(raw: dict[str, Any], *, source: str = "the config") -> RunConfig:
    """Validate a mapping of settings (as TOML gives them) into a :class:`RunConfig`.

    Parameters
    ----------
    raw
        Settings by key; keys left out keep :class:`RunConfig`'s defaults.
    source
        Where the settings came from, for the error messages.

    Raises
    ------
    ConfigError
        If a key is unknown, has a value of the wrong type or range, or has
        no effect on the chosen learner and data.

    """
    hints = typing.get_type_hints(RunConfig)
    known = [f.name for f in fields(RunConfig)]
    try:
        raw = upgrade_settings(raw, source=source)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {key!r}; the keys are {', '.join(known)}")
        values[key] = _check_type(key, value, hints[key], source)
    try:
        config = RunConfig(**values)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{source}: {err}") from err
    unused = [key for key in values if not applies(key, config.learner, config.data)]
    if unused:
        raise ConfigError(
            f"{source}: {', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect "
            f"on learner {config.learner!r} with data {config.data!r}; remove "
            f"{'it' if len(unused) == 1 else 'them'}"
        )
    return config


def _check_type(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` if it fits the field's type (ints accepted for floats), else raise."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return value
        origin = typing.get_origin(option)
        if origin is typing.Literal and value in typing.get_args(option):
            return value
        if origin is tuple and isinstance(value, list):
            item = typing.get_args(option)[0]
            if all(_is_int(v) if item is int else isinstance(v, item) for v in value):
                return tuple(value)
        if option is str and isinstance(value, str):
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is int and _is_int(value):
            return value
        if option is float and (_is_int(value) or isinstance(value, float)):
            return float(value)
    want = " or ".join(_describe(o) for o in options)
    raise ConfigError(f"{source}: {key} must be {want}, got {value!r}")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(option: Any) -> str:
    if typing.get_origin(option) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(option))
    if typing.get_origin(option) is tuple:
        item = typing.get_args(option)[0]
        return "a list of integers" if item is int else "a list of strings"
    return {
        int: "an integer",
        str: "a string",
        float: "a number",
        bool: "true or false",
        type(None): "left out",
    }.get(option, getattr(option, "__name__", str(option)))
