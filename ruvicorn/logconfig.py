"""``--log-config``: a logging configuration file applied over ruvicorn's own setup.

JSON and YAML files hold a ``logging.config.dictConfig`` dictionary; anything else is read
as an INI file by ``fileConfig``. Loggers the file does not name keep working
(``disable_existing_loggers`` defaults to false), so ruvicorn's own lines are not lost to
a file that only configures the app's loggers.
"""

from __future__ import annotations

import json
import logging.config
from pathlib import Path
from typing import Any

from ruvicorn.config import ConfigError
from ruvicorn.logs import one_line


def _load_yaml(text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "--log-config: a YAML file needs PyYAML (pip install pyyaml), or use JSON or INI"
        ) from None
    return yaml.safe_load(text)


def apply(path: str) -> None:
    """Configure logging from ``path``; ConfigError with one line when it cannot be."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".json", ".yaml", ".yml"):
            text = Path(path).read_text(encoding="utf-8")
            data = json.loads(text) if suffix == ".json" else _load_yaml(text)
            if not isinstance(data, dict):
                raise ConfigError(f"--log-config {path}: not a mapping of logging settings")
            data.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(data)
        else:
            if not Path(path).is_file():
                raise ConfigError(f"--log-config {path}: no such file")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(f"--log-config {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # dictConfig, fileConfig and parsers raise many kinds
        raise ConfigError(f"--log-config {path}: {one_line(exc)}") from None
