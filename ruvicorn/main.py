"""Entry points: the console script and ``python -m ruvicorn``."""

from __future__ import annotations

from ruvicorn import logs
from ruvicorn.config import Config


def run_from_config(config: Config) -> int:
    """Serve ``config`` until stopped; returns the process exit code."""
    logs.configure(config.log_level, config.log_file)
    from ruvicorn.supervisor.master import run_master

    return run_master(config)


def main() -> None:
    from ruvicorn.cli import cli

    cli(auto_envvar_prefix="RUVICORN")
