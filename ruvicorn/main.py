"""Entry points: the console script and ``python -m ruvicorn``."""

from __future__ import annotations

import os
import sys
from typing import Any

from ruvicorn import envfile, exitcodes, logs
from ruvicorn.config import HTTP1_IMPLEMENTATIONS, WS_IMPLEMENTATIONS, Config, ConfigError
from ruvicorn.hooks import NO_HOOKS, ServerHooks


def prepare_process(config: Config) -> None:
    """What the master does to itself before anything else: --chdir (so every relative path
    after it, the log file included, is relative to that directory), --umask, --env-file.

    Raises ConfigError with the one line to show.
    """
    if config.chdir is not None:
        try:
            os.chdir(config.chdir)
        except OSError as exc:
            raise ConfigError(f"--chdir {config.chdir}: {exc.strerror}") from None
    mask = config.umask_bits
    if mask is not None:
        os.umask(mask)
    if config.env_file is not None:
        envfile.load(config.env_file)


def setup_logging(config: Config) -> None:
    """ruvicorn's handlers, then --log-config over them; workers inherit both by fork."""
    logs.configure(
        config.log_level,
        config.log_file,
        log_format=config.log_format,
        access_file=config.access_logfile,
        colors=config.use_colors,
    )
    if config.log_config is not None:
        # Here, not at import: logging.config (and the handlers and socketserver it
        # imports) would otherwise be forked into every worker of a server without it.
        from ruvicorn import logconfig

        logconfig.apply(config.log_config)


def run_from_config(config: Config, hooks: ServerHooks = NO_HOOKS, app: Any = None) -> int:
    """Serve ``config`` until stopped; returns the process exit code.

    ``app`` is an application object to serve instead of importing ``config.app``.
    """
    logs.configure(config.log_level, log_format=config.log_format)
    try:
        prepare_process(config)
    except ConfigError as exc:
        logs.error_log.error("%s", exc)
        return exitcodes.USAGE
    try:
        setup_logging(config)
    except ConfigError as exc:
        logs.error_log.error("%s", exc)
        return exitcodes.USAGE
    if config.ws in WS_IMPLEMENTATIONS:
        logs.error_log.info(
            "--ws %s: WebSocket connections are served by ruvicorn's native implementation",
            config.ws,
        )
    if config.http in HTTP1_IMPLEMENTATIONS:
        logs.error_log.info(
            "--http %s: read as --http 1 (HTTP/1.1 served by ruvicorn's native parser)",
            config.http,
        )
    from ruvicorn.supervisor.master import run_master

    return run_master(config, hooks, app)


def main() -> None:
    if sys.argv[1:2] == ["ctl"]:
        from ruvicorn.ctl import main as ctl_main

        ctl_main(sys.argv[2:])
    from ruvicorn.cli import cli

    cli(auto_envvar_prefix="RUVICORN")
