"""Config files: ``--config FILE`` (TOML or a Python file), else ``ruvicorn.toml`` or
``[tool.ruvicorn]`` in ``pyproject.toml`` in the working directory.

TOML holds flat keys named like the options (``workers = 4``). A Python file sets options as
module globals and may define server hooks as functions (see ``ruvicorn.hooks``), so a
config file written for gunicorn loads as is. Values go through ``coerce``: the same
conversions and checks as the command line, with errors naming the file.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ruvicorn import coerce
from ruvicorn.config import ConfigError
from ruvicorn.hooks import HOOK_NAMES, UNSUPPORTED_HOOKS, ServerHooks
from ruvicorn.logs import one_line

# The TOML parser, runpy and difflib are imported where a file is read or refused: the
# command looks for a config file on every start, and the master forks each worker with
# everything it imported, so a start without a file must not carry them.

DEFAULT_FILE = "ruvicorn.toml"
PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class ConfigFile:
    """What one config file sets: typed settings by field name, and hooks."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)
    hooks: ServerHooks = field(default_factory=ServerHooks)


def discover(directory: str | None = None) -> ConfigFile | None:
    """``ruvicorn.toml``, else ``pyproject.toml`` with a ``[tool.ruvicorn]`` table, else None."""
    base = directory or os.getcwd()
    default = os.path.join(base, DEFAULT_FILE)
    if os.path.isfile(default):
        return load(DEFAULT_FILE if directory is None else default)
    pyproject = os.path.join(base, PYPROJECT)
    if os.path.isfile(pyproject):
        shown = PYPROJECT if directory is None else pyproject
        table = _read_toml(pyproject, shown).get("tool", {}).get("ruvicorn")
        if table is not None:
            return _from_table(table, f"{shown} [tool.ruvicorn]")
    return None


def load(path: str) -> ConfigFile:
    """Read ``path``: a ``.py`` file is executed, anything else is parsed as TOML."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} not found")
    if path.endswith(".py"):
        return _from_python(path)
    data = _read_toml(path, path)
    if os.path.basename(path) == PYPROJECT:
        return _from_table(data.get("tool", {}).get("ruvicorn", {}), f"{path} [tool.ruvicorn]")
    return _from_table(data, path)


def _read_toml(path: str, shown: str) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {shown}: {exc.strerror}") from None


def _from_table(table: Any, where: str) -> ConfigFile:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of settings")
    for key, item in table.items():
        if isinstance(item, dict):
            raise ConfigError(f"{where}: unknown setting {key!r} (settings are flat keys)")
    return ConfigFile(path=where, values=coerce.values(table, where))


def _from_python(path: str) -> ConfigFile:
    import runpy

    try:
        namespace = runpy.run_path(path, run_name="__ruvicorn_config__")
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{path}: the config file raised {one_line(exc)}") from None
    settings: dict[str, Any] = {}
    hooks: dict[str, Callable[..., Any]] = {}
    for name, item in namespace.items():
        if name.startswith("_") or isinstance(item, types.ModuleType):
            continue
        if callable(item):
            if getattr(item, "__module__", None) != "__ruvicorn_config__":
                continue  # imported (from os import cpu_count): not the file's own
            hooks[name] = _hook(name, item, path)
        else:
            settings[name] = item
    return ConfigFile(path=path, values=coerce.values(settings, path), hooks=ServerHooks(**hooks))


def _hook(name: str, item: Callable[..., Any], path: str) -> Callable[..., Any]:
    if name in HOOK_NAMES:
        return item
    if name in UNSUPPORTED_HOOKS:
        raise ConfigError(f"{path}: hook {name!r} is not supported: {UNSUPPORTED_HOOKS[name]}")
    import difflib

    close = difflib.get_close_matches(name, HOOK_NAMES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"{path}: unknown hook {name!r} ({hint}helper functions must start with '_')")
