"""The ``ruvicorn`` command, generated from the settings in ``config``."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from ruvicorn.config import Config, ConfigError, settings

ENV_PREFIX = "RUVICORN"


class UsageError(click.ClickException):
    """A bad command line, shown as the one line ``Error: ...`` (exit 2)."""

    exit_code = 2


class OneLineErrors(click.Command):
    """Parsing errors become :class:`UsageError`: one line, not the usage block."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise UsageError(f"{exc.format_message()} (see ruvicorn --help)") from None


def _click_type(f: dataclasses.Field[Any]) -> Any:
    hint = typing.get_type_hints(Config)[f.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if f.metadata["choices"]:
        return click.Choice(f.metadata["choices"], case_sensitive=False)
    if typing.get_origin(hint) is tuple:
        return str
    return {int: int, float: float, str: str, bool: bool}[hint]


def _option(f: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    meta = f.metadata
    long = "--" + f.name.replace("_", "-")
    flags = meta["flags"] or (long,)
    default = f.default if f.default is not dataclasses.MISSING else None
    kwargs: dict[str, Any] = {
        "help": meta["help"],
        "show_envvar": True,
        "envvar": [f"{ENV_PREFIX}_{f.name.upper()}", *meta["env"]],
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


def _build_command() -> click.Command:
    def command(**values: Any) -> None:
        from ruvicorn.main import run_from_config

        try:
            config = Config.from_mapping(values)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        raise SystemExit(run_from_config(config))

    for f in reversed([f for f in settings() if f.name != "app"]):
        command = _option(f)(command)
    command = click.argument("app", envvar=f"{ENV_PREFIX}_APP")(command)
    command = click.version_option(package_name="ruvicorn", prog_name="ruvicorn")(command)
    return click.command(
        cls=OneLineErrors,
        name="ruvicorn",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        help="Serve the ASGI application APP (module:attribute).",
    )(command)


cli = _build_command()
