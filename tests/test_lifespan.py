"""Unit tests for ruvicorn.worker.lifespan (the ASGI lifespan protocol driver)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from starlette.applications import Starlette

from ruvicorn.worker.lifespan import Lifespan

LOGGER = logging.getLogger("ruvicorn.test.lifespan")


class Recorder:
    """A lifespan app whose behaviour each test sets; it records what it saw."""

    def __init__(self, **behaviour: Any) -> None:
        self.b = behaviour
        self.scopes: list[dict[str, Any]] = []
        self.received: list[str] = []
        self.finished = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if self.b.get("raise_first"):
            raise RuntimeError("lifespan? never heard of it")
        if self.b.get("return_first"):
            return
        msg = await receive()
        self.received.append(msg["type"])
        if self.b.get("startup_failed"):
            await send({"type": "lifespan.startup.failed", "message": self.b["startup_failed"]})
            return
        if self.b.get("bad_message"):
            await send({"type": "http.response.start", "status": 200})
            return
        scope["state"]["db"] = "connected"
        await send({"type": "lifespan.startup.complete"})
        if self.b.get("crash_after_startup"):
            raise RuntimeError("crashed while serving")
        msg = await receive()
        self.received.append(msg["type"])
        if self.b.get("shutdown_failed"):
            await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
        elif self.b.get("shutdown_raises"):
            raise RuntimeError("shutdown exploded")
        else:
            await send({"type": "lifespan.shutdown.complete"})
        self.finished = True


def drive(app: Any, mode: str) -> tuple[bool, Lifespan]:
    async def main() -> tuple[bool, Lifespan]:
        lifespan = Lifespan(app, mode, LOGGER)
        ok = await lifespan.startup()
        if ok:
            await lifespan.shutdown()
        return ok, lifespan

    return asyncio.run(main())


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The one-line summaries logged at ERROR (the app's tracebacks come before them)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info is None and "\n" not in r.getMessage()
    ]


def shown_traceback(caplog: pytest.LogCaptureFixture) -> str:
    """The app's traceback as logged at ERROR by default; the summary line must follow it."""
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert records and "\n" not in records[-1].getMessage(), "the summary must come last"
    text = "\n".join(
        (r.getMessage() + "\n" + logging.Formatter().formatException(r.exc_info))
        if r.exc_info
        else r.getMessage()
        for r in records[:-1]
    )
    assert "Traceback (most recent call last)" in text, text
    return text


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_and_shutdown_with_state(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder()
    with caplog.at_level(logging.DEBUG):
        ok, lifespan = drive(app, mode)
    assert ok
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]
    assert app.finished
    assert lifespan.state == {"db": "connected"}
    scope = app.scopes[0]
    assert scope["type"] == "lifespan"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
    assert scope["state"] is lifespan.state
    assert not errors(caplog)
    assert not lifespan.shutdown_failed
    text = caplog.text
    assert "Application startup complete." in text
    assert "Application shutdown complete." in text


def test_off_never_calls_the_app() -> None:
    app = Recorder()
    ok, lifespan = drive(app, "off")
    assert ok
    assert app.scopes == []
    assert not lifespan.supported


def test_auto_app_raising_first_is_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder(raise_first=True)
    with caplog.at_level(logging.DEBUG):
        ok, lifespan = drive(app, "auto")
    assert ok
    assert not lifespan.supported
    assert not errors(caplog)
    assert "unsupported" in caplog.text


def test_auto_app_returning_without_answer_is_unsupported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Recorder(return_first=True)
    with caplog.at_level(logging.DEBUG):
        ok, lifespan = drive(app, "auto")
    assert ok
    assert not lifespan.supported
    assert not errors(caplog)


@pytest.mark.parametrize("behaviour", ["raise_first", "return_first"])
def test_on_requires_an_answer(behaviour: str, caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder(**{behaviour: True})
    ok, _ = drive(app, "on")
    assert not ok
    [line] = errors(caplog)
    assert line.startswith("Application startup failed")
    if behaviour == "raise_first":
        assert "lifespan? never heard of it" in shown_traceback(caplog)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_message_shown_then_one_line(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    tb = "Traceback (most recent call last):\n  File 'x.py', line 1\nRuntimeError: db down\n"
    app = Recorder(startup_failed=tb)
    ok, _ = drive(app, mode)
    assert not ok
    [line] = errors(caplog)
    assert line == "Application startup failed: RuntimeError: db down"
    assert "File 'x.py', line 1" in shown_traceback(caplog)
    assert app.received == ["lifespan.startup"]


def test_unexpected_message_fails_startup(caplog: pytest.LogCaptureFixture) -> None:
    ok, _ = drive(Recorder(bad_message=True), "auto")
    assert not ok
    [line] = errors(caplog)
    assert "http.response.start" in line


def test_shutdown_failed_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ok, lifespan = drive(Recorder(shutdown_failed=True), "on")
    assert ok
    assert lifespan.shutdown_failed
    [line] = errors(caplog)
    assert line == "Application shutdown failed: flush failed"


def test_shutdown_raising_in_on_mode(caplog: pytest.LogCaptureFixture) -> None:
    ok, lifespan = drive(Recorder(shutdown_raises=True), "on")
    assert ok
    assert lifespan.shutdown_failed
    assert any("shutdown" in line.lower() for line in errors(caplog))


def test_crash_after_startup_is_logged_and_shutdown_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> Lifespan:
        lifespan = Lifespan(Recorder(crash_after_startup=True), "auto", LOGGER)
        assert await lifespan.startup()
        await asyncio.sleep(0)  # let the app task crash
        await asyncio.sleep(0)
        await asyncio.wait_for(lifespan.shutdown(), 10)
        return lifespan

    asyncio.run(main())
    assert any("crashed while serving" in line for line in errors(caplog))


def test_cancelled_startup_cancels_the_app_task() -> None:
    cancelled = []

    async def hangs(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        lifespan = Lifespan(hangs, "on", LOGGER)
        task = asyncio.ensure_future(lifespan.startup())
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert cancelled == [True]


def test_invalid_mode() -> None:
    with pytest.raises(ValueError, match="lifespan mode"):
        Lifespan(Recorder(), "sometimes", LOGGER)


def test_starlette_lifespan_state() -> None:

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield {"pool": "ready"}

    app = Starlette(lifespan=lifespan)
    ok, ls = drive(app, "on")
    assert ok
    assert ls.state == {"pool": "ready"}


def test_shutdown_raising_in_auto_mode_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ok, lifespan = drive(Recorder(shutdown_raises=True), "auto")
    assert ok
    assert lifespan.shutdown_failed
    [line] = errors(caplog)
    assert line == "Application shutdown failed: RuntimeError: shutdown exploded"
    assert "shutdown exploded" in shown_traceback(caplog)


def test_starlette_startup_failure_traceback_then_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        raise ConnectionError("database unreachable")
        yield

    ok, _ = drive(Starlette(lifespan=lifespan), "auto")
    assert not ok
    [line] = errors(caplog)
    assert line == "Application startup failed: ConnectionError: database unreachable"
    assert 'raise ConnectionError("database unreachable")' in shown_traceback(caplog)


def test_task_cancelled_before_shutdown_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        lifespan = Lifespan(Recorder(), "on", LOGGER)
        assert await lifespan.startup()
        assert lifespan.task is not None
        lifespan.task.cancel()
        await asyncio.sleep(0)
        await lifespan.shutdown()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert "cancelled before shutdown" in caplog.text
