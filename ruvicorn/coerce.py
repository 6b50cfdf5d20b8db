"""Settings given as Python values (a config file, ``ruvicorn.run(**options)``) made into
exactly what the command line would have produced, so both get the same checks.

A file or a caller may name a setting by its field name, any of its long flags
(``graceful_timeout`` for ``--graceful-timeout``) or an extra name the declaration lists;
dashes and underscores are interchangeable.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ruvicorn import compat
from ruvicorn.config import Config, ConfigError, settings


def _norm(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


@functools.cache
def names() -> dict[str, str]:
    """Every name a setting may be given by, normalised, mapped to its field name."""
    table: dict[str, str] = {}
    for f in settings():
        spellings = [f.name, *f.metadata["flags"], *f.metadata["keys"]]
        for spelling in spellings:
            if spelling.startswith("--") or not spelling.startswith("-"):
                table[_norm(spelling)] = f.name
    return table


@functools.cache
def kind(name: str) -> type:
    """The plain type of a setting: bool, int, float, str or tuple (for repeatables)."""
    hint = typing.get_type_hints(Config)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return tuple
    assert hint in (bool, int, float, str), (name, hint)
    return typing.cast(type, hint)


def field_name(key: str, where: str) -> str:
    """The field a key names; ConfigError (one line, naming ``where``) when none does."""
    normal = _norm(key)
    if normal in names():
        return names()[normal]
    advice = compat.advice_for_key(normal)
    if advice is not None:
        raise ConfigError(f"{where}: {key!r}: {advice}")
    import difflib  # here: only a misspelt key needs it, and the master forks what it imports

    close = difflib.get_close_matches(normal, list(names()), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{where}: unknown setting {key!r}{hint}")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


Wrong = Callable[[str], ConfigError]  # the error for a value that is not ``expected``


def _as_tuple(raw: Any, wrong: Wrong) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, (list, tuple)) and all(isinstance(v, str) for v in raw):
        return tuple(raw)
    raise wrong("a string or a list of strings")


def _as_bool(raw: Any, wrong: Wrong) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
        return raw.lower() in ("true", "1", "yes")
    raise wrong("true or false")


def _as_int(raw: Any, wrong: Wrong) -> int:
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    raise wrong("a whole number")


def _as_float(raw: Any, wrong: Wrong) -> float:
    if isinstance(raw, (int, float)):
        return float(raw)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise wrong("a number") from None


def _as_text(name: str, raw: Any, choices: Any, label: str, wrong: Wrong) -> str:
    if isinstance(raw, int) and name == "umask":
        return format(raw, "o")
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        raise wrong("a string")
    if choices:
        if raw.lower() not in choices:
            raise ConfigError(f"{label} must be one of {', '.join(choices)}, not {raw!r}")
        return raw.lower()
    return raw


_BY_KIND: dict[type, Callable[[Any, Wrong], Any]] = {
    tuple: _as_tuple,
    bool: _as_bool,
    int: _as_int,
    float: _as_float,
}


def value(name: str, raw: Any, where: str) -> Any:
    """``raw`` as the type of setting ``name``; ConfigError naming ``where`` if it cannot be."""
    f = next(f for f in settings() if f.name == name)
    want = kind(name)
    label = f"{where}: {name}"

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{label} must be {expected}, not {_describe(raw)}")

    if raw is None:
        if f.default is None:
            return None
        raise wrong("set to a value")
    if isinstance(raw, bool) and want not in (tuple, bool):
        raise wrong(f"a {'number' if want in (int, float) else 'string'}")
    coerce = _BY_KIND.get(want)
    if coerce is not None:
        return coerce(raw, wrong)
    return _as_text(name, raw, f.metadata["choices"], label, wrong)


def values(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Field name -> typed value for every key of ``raw``, checked like the command line.

    The values are also checked together (ranges, forms), so an error names ``where``.
    """
    typed: dict[str, Any] = {}
    for key, item in raw.items():
        name = field_name(key, where)
        if name in typed:
            raise ConfigError(f"{where}: {name} is set twice (as {key!r} and another name)")
        typed[name] = value(name, item, where)
    try:
        Config(**typed)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return typed
