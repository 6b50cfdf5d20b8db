"""The Python API: ``ruvicorn.Server`` embedded in a running loop, ``ruvicorn.run`` checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

import ruvicorn
from ruvicorn import Config, ConfigError, Server, StartupError

APPS = Path(__file__).parent / "apps"


class App:
    """Answers with the path; records its lifespan events."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].split(".")[1]
                self.events.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})


def test_embedded_server_serves_and_stops_cleanly() -> None:
    app = App()

    async def main() -> None:
        server = Server(Config(port=0, access_log=False), app=app)
        task = asyncio.create_task(server.serve())
        await asyncio.wait_for(server.wait_started(), 10)
        assert server.started
        assert server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for path in ("/a", "/b"):
                response = await client.get(path)
                assert (response.status_code, response.text) == (200, path)
        await asyncio.wait_for(server.shutdown(), 10)
        assert task.done() and task.exception() is None
        assert not server.started
        assert all(s.fileno() == -1 for s in server.sockets)  # listeners closed

    asyncio.run(main())
    assert app.events == ["startup", "shutdown"]


def test_embedded_server_stops_on_should_exit_and_spares_other_tasks() -> None:
    async def main() -> None:
        server = Server(Config(app="testapp:app", app_dir=str(APPS), port=0))
        bystander = asyncio.create_task(asyncio.sleep(60))
        task = asyncio.create_task(server.serve())
        await asyncio.wait_for(server.wait_started(), 10)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/ok")).status_code == 200
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        assert not bystander.done()  # the caller's tasks are not the server's to cancel
        bystander.cancel()

    asyncio.run(main())


def test_embedded_server_startup_errors() -> None:
    async def failing_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async def main() -> None:
        server = Server(Config(port=0, lifespan="on"), app=failing_lifespan)
        with pytest.raises(StartupError) as info:
            await asyncio.wait_for(server.serve(), 10)
        assert info.value.code == 4
        assert not server.started
        missing = Server(Config(app="nosuchmodule:app", port=0))
        with pytest.raises(StartupError, match="nosuchmodule") as info:
            await asyncio.wait_for(missing.serve(), 10)
        assert info.value.code == 3

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"config": Config(workers=2)}, "--workers needs ruvicorn.run()"),
        ({"config": Config(reload=True)}, "--reload needs"),
        ({"config": Config()}, "Server needs an app"),
    ],
)
def test_server_refuses_what_one_process_cannot_do(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Server(**kwargs)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"workers": 0}, "--workers must be at least 1, not 0"),
        ({"wurkers": 2}, "unknown setting 'wurkers' (did you mean 'workers'?)"),
        ({"port": "http"}, "port must be a whole number"),
        ({"threads": 4}, "use --workers"),
        ({"reload": True}, "reload needs the app as 'module:attribute'"),
        ({"app": "x:y"}, "pass the app as the first argument"),
    ],
)
def test_run_raises_config_error_before_serving(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        ruvicorn.run(App(), **options)
    assert needle in str(info.value)
    assert str(info.value).startswith("ruvicorn.run()")
    assert "\n" not in str(info.value)


def test_run_rejects_a_bad_app_string() -> None:
    with pytest.raises(ConfigError, match="module:attribute"):
        ruvicorn.run("not an app")


class Asgi2App:
    """The ASGI 2 double-callable style: the server must adapt it."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2"})


def test_embedded_server_adapts_an_asgi2_app() -> None:
    async def main() -> None:
        server = Server(Config(port=0), app=Asgi2App)
        task = asyncio.create_task(server.serve())
        await asyncio.wait_for(server.wait_started(), 10)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/")).text == "asgi2"
        await asyncio.wait_for(server.shutdown(), 10)
        assert task.done()

    asyncio.run(main())
