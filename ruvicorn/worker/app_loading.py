"""Find, import and adapt the ASGI application a worker serves.

Everything that can go wrong here is the user's to fix (a typo in ``module:attr``, a missing
dependency, a factory that raises), so each failure becomes an :class:`AppLoadError` whose text
is one line naming what failed; the worker logs that line and exits ``APP_LOAD_FAILED``
instead of printing a traceback wall.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ruvicorn.config import Config, split_app
from ruvicorn.logs import one_line

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AppLoadError(Exception):
    """The application could not be loaded; ``str()`` is the one line a person reads."""


class ASGI2Adapter:
    """Serve an ASGI 2 application (``app(scope)`` returning ``instance(receive, send)``).

    The protocol only speaks ASGI 3, so the two-step call is folded into one here.
    """

    def __init__(self, app: Callable[[Scope], Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def load_app(config: Config) -> ASGIApp:
    """Return the ASGI 3 callable named by ``config.app``, or raise :class:`AppLoadError`."""
    module_name, attr_path = split_app(config.app)
    _add_app_dir(config.app_dir)
    module = _import(module_name, config.app_dir)
    obj = _resolve(module, module_name, attr_path)
    if config.factory:
        obj = _call_factory(obj, config.app)
    return adapt(obj, config.app, config.factory)


def adapt(obj: Any, name: str = "", factory: bool = False) -> ASGIApp:
    """``obj`` as an ASGI 3 callable (an ASGI 2 app is wrapped); AppLoadError if not callable."""
    if not callable(obj):
        what = f"app {name!r}" if name else "the app"
        raise AppLoadError(
            f"{what} is not callable (it is {type(obj).__name__}); "
            "point at the ASGI application" + ("" if factory else " or pass --factory")
        )
    if is_asgi2(obj):
        return ASGI2Adapter(obj)
    app: ASGIApp = obj
    return app


def _add_app_dir(app_dir: str) -> None:
    """Put the app directory first on ``sys.path``, as running ``python`` there would."""
    path = os.path.abspath(app_dir)
    if not sys.path or sys.path[0] != path:
        sys.path.insert(0, path)


def _import(module_name: str, app_dir: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"could not import module {module_name!r}: no module named {missing!r} "
                f"(looked in app dir {os.path.abspath(app_dir)!r} and sys.path)"
            ) from None
        raise AppLoadError(
            f"module {module_name!r} failed to import: {one_line(exc)}{_where(exc)}"
        ) from None
    except (Exception, SystemExit) as exc:
        raise AppLoadError(
            f"module {module_name!r} failed to import: {one_line(exc)}{_where(exc)}"
        ) from None


def _where(exc: BaseException) -> str:
    """`` (at file:line)`` for the innermost frame of the app's code that raised, if any."""
    if isinstance(exc, SyntaxError):
        return ""  # its message already names the file and line
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "importlib" not in f.filename]
    if not ours:
        return ""
    last = ours[-1]
    return f" (at {last.filename}:{last.lineno})"


def _resolve(module: Any, module_name: str, attr_path: str) -> Any:
    obj = module
    walked = []
    for part in attr_path.split("."):
        walked.append(part)
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"module {module_name!r} has no attribute {'.'.join(walked)!r}"
            ) from None
    return obj


def _call_factory(obj: Any, spec: str) -> Any:
    if not callable(obj):
        raise AppLoadError(f"app factory {spec!r} is not callable (it is {type(obj).__name__})")
    try:
        return obj()
    except Exception as exc:
        raise AppLoadError(f"app factory {spec!r} raised {one_line(exc)}{_where(exc)}") from None


def is_asgi2(app: Any) -> bool:
    """Whether ``app`` follows the ASGI 2 double-callable style.

    A class is ASGI 2 unless its instances are awaitable (the ASGI 3 class style); any other
    callable is ASGI 2 when it takes exactly one positional argument, the scope. Coroutine
    functions and callables whose signature cannot be read are taken as ASGI 3.
    """
    if inspect.isclass(app):
        return not hasattr(app, "__await__")
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return False
    try:
        sig = inspect.signature(app)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    return len(positional) == 1 and not has_varargs
