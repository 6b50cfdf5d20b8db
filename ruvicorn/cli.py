"""The ``ruvicorn`` command, generated from the settings in ``config``.

Where a value comes from, highest first: the command line, the environment
(``RUVICORN_<NAME>`` and the names other servers read), the config file, the default. The
config file is read by an eager option before any other is processed and becomes click's
default map, so click's own precedence does the rest and reports each value's source.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from ruvicorn import coerce, compat, configfile, exitcodes
from ruvicorn.config import Config, ConfigError, flag_of, settings
from ruvicorn.configfile import ConfigFile
from ruvicorn.hooks import NO_HOOKS

ENV_PREFIX = "RUVICORN"
_FILE = "ruvicorn.config_file"


class UsageError(click.ClickException):
    """A bad command line, shown as the one line ``Error: ...`` (exit 2)."""

    exit_code = 2


class AppError(click.ClickException):
    """``--check-config``: the app could not be loaded (exit 3, as when serving)."""

    exit_code = exitcodes.APP_LOAD_FAILED


class OneLineErrors(click.Command):
    """Parsing errors become :class:`UsageError`: one line, not the usage block."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise UsageError(f"{exc.format_message()} (see ruvicorn --help)") from None


def _click_type(f: dataclasses.Field[Any]) -> Any:
    if f.metadata["choices"]:
        return click.Choice(f.metadata["choices"], case_sensitive=False)
    kind = coerce.kind(f.name)
    return str if kind is tuple else kind


def env_names(f: dataclasses.Field[Any]) -> list[str]:
    """The variables a setting is read from, in the order they are tried."""
    return [f"{ENV_PREFIX}_{f.name.upper()}", *f.metadata["env"]]


def _option(f: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    meta = f.metadata
    flags = meta["flags"] or (flag_of(f.name),)
    default = f.default if f.default is not dataclasses.MISSING else None
    kwargs: dict[str, Any] = {
        "help": meta["help"],
        "show_envvar": True,
        "envvar": env_names(f),
    }
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    if f.default_factory is not dataclasses.MISSING:  # repeatable option
        return click.option(*flags, f.name, multiple=True, type=str, **kwargs)
    if isinstance(default, bool):
        if meta["secondary"]:
            spec = f"{flags[0]}/{meta['secondary']}"
            return click.option(spec, f.name, default=default, show_default=True, **kwargs)
        return click.option(flags[0], f.name, is_flag=True, default=default, **kwargs)
    return click.option(
        *flags, f.name, type=_click_type(f), default=default, show_default=True, **kwargs
    )


def _unsupported(item: compat.Unsupported) -> Callable[[Any], Any]:
    """A hidden option whose use is a one-line error saying what to do instead."""
    shown = "/".join(item.flags)

    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value and ctx.get_parameter_source(str(param.name)) != ParameterSource.DEFAULT:
            raise UsageError(f"{shown}: {item.advice}")

    name = "compat_" + item.flags[-1].lstrip("-").replace("-", "_")
    extra: dict[str, Any] = {"type": str} if item.takes_value else {"is_flag": True}
    return click.option(
        *item.flags, name, hidden=True, expose_value=False, callback=refuse, **extra
    )


def _read_config_file(ctx: click.Context, param: click.Parameter, path: str | None) -> None:
    """Eager: load the file before any setting is processed and make it the default map."""
    try:
        loaded = configfile.load(path) if path else configfile.discover()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    ctx.meta[_FILE] = loaded
    if loaded is not None:
        ctx.default_map = dict(loaded.values)


def source_of(ctx: click.Context, f: dataclasses.Field[Any]) -> str:
    """Where the value of setting ``f`` came from, for ``--print-config``."""
    source = ctx.get_parameter_source(f.name)
    if source == ParameterSource.COMMANDLINE:
        return "command line"
    if source == ParameterSource.ENVIRONMENT:
        # click takes the first variable with a non-empty value.
        return next((n for n in env_names(f) if os.environ.get(n)), "environment")
    if source == ParameterSource.DEFAULT_MAP:
        loaded: ConfigFile | None = ctx.meta.get(_FILE)
        return loaded.path if loaded is not None else "config file"
    return "default"


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return str(value)


def _shown(f: dataclasses.Field[Any], config: Config) -> str:
    """A setting's value for ``--print-config``; a secret only says whether it is set."""
    value = getattr(config, f.name)
    if f.metadata["secret"] and value is not None:
        return "(set, not shown)"
    return _show(value)


def print_config(ctx: click.Context, config: Config) -> None:
    rows = [(f.name, _shown(f, config), source_of(ctx, f)) for f in settings()]
    width = max(len(f"{n} = {v}") for n, v, _ in rows)
    for name, shown, source in rows:
        click.echo(f"{f'{name} = {shown}':<{width}}  # {source}")
    loaded: ConfigFile | None = ctx.meta.get(_FILE)
    if loaded is not None and loaded.hooks.names():
        click.echo(f"# hooks from {loaded.path}: {', '.join(loaded.hooks.names())}")


def check_config(config: Config) -> None:
    """Everything short of binding: the process settings, then importing the app here."""
    from ruvicorn import identity, tls
    from ruvicorn.main import prepare_process
    from ruvicorn.worker.app_loading import AppLoadError, load_app

    problem = identity.switch_problem(config.user, config.group)
    if problem is not None:
        raise UsageError(problem)
    try:
        prepare_process(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    problem = tls.problem(config)
    if problem is not None:
        raise UsageError(problem)
    try:
        load_app(config)
    except AppLoadError as exc:
        raise AppError(f"Could not load the app: {exc}") from None
    click.echo(f"Configuration OK; the app {config.app} loads")


def _build_command() -> click.Command:
    def command(print_config_: bool, check_config_: bool, **values: Any) -> None:
        from ruvicorn.main import run_from_config

        ctx = click.get_current_context()
        try:
            config = Config.from_mapping(values)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        if print_config_:
            print_config(ctx, config)
            raise SystemExit(exitcodes.OK)
        if not config.app:
            raise UsageError(
                "Missing argument 'APP': name the app as module:attribute "
                "(or set RUVICORN_APP, or app in a config file)"
            )
        if check_config_:
            check_config(config)
            raise SystemExit(exitcodes.OK)
        loaded: ConfigFile | None = ctx.meta.get(_FILE)
        hooks = loaded.hooks if loaded is not None else NO_HOOKS
        raise SystemExit(run_from_config(config, hooks=hooks))

    for item in reversed(compat.UNSUPPORTED):
        command = _unsupported(item)(command)
    for f in reversed([f for f in settings() if f.name != "app"]):
        command = _option(f)(command)
    command = click.option(
        "--check-config",
        "check_config_",
        is_flag=True,
        help="Check every setting and import the app (without binding), then exit.",
    )(command)
    command = click.option(
        "--print-config",
        "print_config_",
        is_flag=True,
        help="Show every setting's value and where it came from, then exit.",
    )(command)
    command = click.option(
        "-c",
        "--config",
        type=click.Path(dir_okay=False),
        envvar=f"{ENV_PREFIX}_CONFIG",
        show_envvar=True,
        is_eager=True,
        expose_value=False,
        callback=_read_config_file,
        help=f"Read settings (TOML, or Python with hooks) from this file [default: "
        f"{configfile.DEFAULT_FILE}, or [tool.ruvicorn] in {configfile.PYPROJECT}, if present].",
    )(command)
    command = click.argument("app", envvar=f"{ENV_PREFIX}_APP", required=False, default="")(command)
    command = click.version_option(package_name="ruvicorn", prog_name="ruvicorn")(command)
    return click.command(
        cls=OneLineErrors,
        name="ruvicorn",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        help="Serve the ASGI application APP (module:attribute).",
    )(command)


cli = _build_command()
