"""Unit tests for ruvicorn.worker.app_loading: every failure is one clear line."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ruvicorn.config import Config, ConfigError
from ruvicorn.worker.app_loading import AppLoadError, ASGI2Adapter, is_asgi2, load_app


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    yield tmp_path
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        del sys.modules[name]


def write(app_dir: Path, source: str, name: str | None = None) -> str:
    """Write a module with a fresh name (so no import cache is shared) and return its name."""
    name = name or f"m_{uuid.uuid4().hex}"
    path = app_dir / (name.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return name


def load(app_dir: Path, spec: str, **kw: Any) -> Any:
    return load_app(Config(app=spec, app_dir=str(app_dir), **kw))


def one_line_error(app_dir: Path, spec: str, **kw: Any) -> str:
    with pytest.raises(AppLoadError) as info:
        load(app_dir, spec, **kw)
    text = str(info.value)
    assert "\n" not in text, text
    assert "Traceback" not in text
    return text


ASGI3 = """
async def app(scope, receive, send):
    await send({"type": "ok", "scope": scope})
"""


def run(app: Any, scope: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope or {"type": "http"}, receive, send))
    return sent


def test_loads_module_attr(app_dir: Path) -> None:
    mod = write(app_dir, ASGI3)
    app = load(app_dir, f"{mod}:app")
    assert app is sys.modules[mod].app
    assert run(app)[0]["type"] == "ok"


def test_app_dir_is_first_on_sys_path(app_dir: Path) -> None:
    mod = write(app_dir, ASGI3)
    load(app_dir, f"{mod}:app")
    assert sys.path[0] == str(app_dir.resolve())


def test_dotted_module_and_dotted_attribute(app_dir: Path) -> None:
    pkg = f"p_{uuid.uuid4().hex}"
    (app_dir / pkg).mkdir()
    (app_dir / pkg / "__init__.py").write_text("")
    write(
        app_dir,
        """
        class Holder:
            async def app(self, scope, receive, send):
                await send({"type": "holder"})
        obj = Holder()
        """,
        name=f"{pkg}.mod",
    )
    app = load(app_dir, f"{pkg}.mod:obj.app")
    assert run(app) == [{"type": "holder"}]


@pytest.mark.parametrize("spec", ["justamodule", ":app", "mod:", "mod:a..b", "mod:1x", "a b:c"])
def test_not_module_attr_form(app_dir: Path, spec: str) -> None:
    """Refused by the settings already, so the master reports it before binding."""
    with pytest.raises(ConfigError, match="module:attribute"):
        load(app_dir, spec)


def test_module_itself_not_found(app_dir: Path) -> None:
    text = one_line_error(app_dir, "no_such_module_xyz:app")
    assert "could not import module 'no_such_module_xyz'" in text
    assert str(app_dir.resolve()) in text


def test_submodule_of_missing_package_is_the_module_itself(app_dir: Path) -> None:
    text = one_line_error(app_dir, "no_such_pkg_xyz.sub:app")
    assert "could not import module 'no_such_pkg_xyz.sub'" in text


def test_import_inside_module_failed_is_distinguished(app_dir: Path) -> None:
    mod = write(app_dir, "import definitely_missing_dependency_abc\napp = 1\n")
    text = one_line_error(app_dir, f"{mod}:app")
    assert f"module {mod!r} failed to import" in text
    assert "No module named 'definitely_missing_dependency_abc'" in text
    assert "could not import module" not in text


def test_module_raising_at_import_names_error_and_place(app_dir: Path) -> None:
    mod = write(app_dir, "x = 1\nraise RuntimeError('boom at import')\n")
    text = one_line_error(app_dir, f"{mod}:app")
    assert "RuntimeError: boom at import" in text
    assert f"{mod}.py:2" in text


def test_syntax_error(app_dir: Path) -> None:
    mod = write(app_dir, "def broken(:\n")
    text = one_line_error(app_dir, f"{mod}:app")
    assert "SyntaxError" in text
    assert f"module {mod!r} failed to import" in text


def test_module_calling_sys_exit(app_dir: Path) -> None:
    mod = write(app_dir, "import sys\nsys.exit(7)\n")
    text = one_line_error(app_dir, f"{mod}:app")
    assert "SystemExit" in text


def test_attribute_missing(app_dir: Path) -> None:
    mod = write(app_dir, ASGI3)
    text = one_line_error(app_dir, f"{mod}:application")
    assert text == f"module {mod!r} has no attribute 'application'"


def test_nested_attribute_missing_names_the_missing_part(app_dir: Path) -> None:
    mod = write(app_dir, "class A:\n    pass\nobj = A()\n")
    text = one_line_error(app_dir, f"{mod}:obj.app")
    assert "'obj.app'" in text


def test_not_callable(app_dir: Path) -> None:
    mod = write(app_dir, "app = 42\n")
    text = one_line_error(app_dir, f"{mod}:app")
    assert "not callable" in text
    assert "int" in text


def test_factory_is_called(app_dir: Path) -> None:
    mod = write(
        app_dir,
        """
        calls = []
        def create_app():
            calls.append(1)
            async def app(scope, receive, send):
                await send({"type": "made"})
            return app
        """,
    )
    app = load(app_dir, f"{mod}:create_app", factory=True)
    assert sys.modules[mod].calls == [1]
    assert run(app) == [{"type": "made"}]


def test_factory_raising(app_dir: Path) -> None:
    mod = write(app_dir, "def create_app():\n    raise ValueError('no database url')\n")
    text = one_line_error(app_dir, f"{mod}:create_app", factory=True)
    assert "factory" in text
    assert "ValueError: no database url" in text


def test_factory_not_callable(app_dir: Path) -> None:
    mod = write(app_dir, "create_app = 'nope'\n")
    text = one_line_error(app_dir, f"{mod}:create_app", factory=True)
    assert "factory" in text
    assert "not callable" in text


def test_factory_returning_non_callable(app_dir: Path) -> None:
    mod = write(app_dir, "def create_app():\n    return None\n")
    text = one_line_error(app_dir, f"{mod}:create_app", factory=True)
    assert "not callable" in text


def test_asgi2_class_is_wrapped(app_dir: Path) -> None:
    mod = write(
        app_dir,
        """
        class App:
            def __init__(self, scope):
                self.scope = scope
            async def __call__(self, receive, send):
                await send({"type": "asgi2", "path": self.scope["path"]})
        """,
    )
    app = load(app_dir, f"{mod}:App")
    assert isinstance(app, ASGI2Adapter)
    assert run(app, {"type": "http", "path": "/x"}) == [{"type": "asgi2", "path": "/x"}]


def test_asgi2_function_is_wrapped(app_dir: Path) -> None:
    mod = write(
        app_dir,
        """
        def app(scope):
            async def instance(receive, send):
                await send({"type": "asgi2fn"})
            return instance
        """,
    )
    app = load(app_dir, f"{mod}:app")
    assert isinstance(app, ASGI2Adapter)
    assert run(app) == [{"type": "asgi2fn"}]


def test_asgi3_shapes_are_not_wrapped() -> None:
    async def coro(scope: Any, receive: Any, send: Any) -> None: ...

    class Callable3:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    class Awaitable3:
        def __init__(self, scope: Any, receive: Any, send: Any) -> None: ...

        def __await__(self) -> Any:
            yield

    def sync_returning_coro(scope: Any, receive: Any, send: Any) -> Any:
        return coro(scope, receive, send)

    for app in (coro, Callable3(), Awaitable3, sync_returning_coro, print):
        assert not is_asgi2(app), app


def test_asgi2_shapes_detected() -> None:
    class Cls:
        def __init__(self, scope: Any) -> None: ...

    class Obj:
        def __call__(self, scope: Any) -> Any: ...

    def fn(scope: Any) -> Any: ...

    for app in (Cls, Obj(), fn):
        assert is_asgi2(app), app
