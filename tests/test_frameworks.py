"""Starlette and FastAPI apps (the ones in examples/) served over real sockets, over HTTP/1.1
and HTTP/2 (h2c prior knowledge), plus the raw ASGI examples: JSON, form upload, streaming
response, background tasks, lifespan state."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from h2raw import h2_httpx
from rawhttp import wait_for
from realserver import REPO, ServerProcess

EXAMPLES = REPO / "examples"
UPLOAD = bytes(range(256)) * 1000


def client(server: ServerProcess):
    return httpx.Client(base_url=f"http://{server.host}:{server.port}", timeout=10.0)


@pytest.fixture(scope="module", params=["starlette_app", "fastapi_app"])
def framework(request, module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory(f"{request.param}:app", app_dir=EXAMPLES, loop=loop)


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def fclient(request, framework: ServerProcess):
    """A client of the framework app, speaking one protocol."""
    with client(framework) if request.param == "HTTP/1.1" else h2_httpx(framework) as c:
        c.event_hooks["response"] = [lambda resp: check_version(resp, request.param)]
        yield c


def check_version(resp: httpx.Response, version: str) -> None:
    assert resp.http_version == version


def test_json(fclient: httpx.Client) -> None:
    resp = fclient.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["hello"] == "world"


def test_json_body(framework: ServerProcess, fclient: httpx.Client) -> None:
    c = fclient
    if framework.app.startswith("fastapi"):
        resp = c.post("/items", json={"name": "widget", "price": 2.5, "tags": ["a"]})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "item": {"name": "widget", "price": 2.5, "tags": ["a"]},
            "total": 5.0,
        }
        bad = c.post("/items", json={"name": "widget"})
        assert bad.status_code == 422
    else:
        resp = c.post("/json", json={"k": [1, 2, {"x": None}]})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"received": {"k": [1, 2, {"x": None}]}}


def test_form_upload(framework: ServerProcess, fclient: httpx.Client) -> None:
    resp = fclient.post(
        "/upload",
        data={"title": "report"},
        files={"file": ("data.bin", UPLOAD, "application/octet-stream")},
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    if framework.app.startswith("fastapi"):
        assert data == {"title": "report", "filename": "data.bin", "size": len(UPLOAD)}
    else:
        assert data == {
            "fields": {"title": "report"},
            "files": {"file": {"filename": "data.bin", "size": len(UPLOAD)}},
        }


def test_streaming_response(fclient: httpx.Client) -> None:
    with fclient.stream("GET", "/stream?count=50") as resp:
        assert resp.status_code == 200
        if resp.http_version == "HTTP/1.1":
            assert resp.headers.get("transfer-encoding") == "chunked"
        else:
            assert "transfer-encoding" not in resp.headers
        text = "".join(resp.iter_text())
    assert text == "".join(f"{i}\n" for i in range(50))


def test_background_task_runs_after_the_response(fclient: httpx.Client) -> None:
    token = uuid.uuid4().hex
    resp = fclient.post(f"/background?token={token}")
    assert resp.status_code == 200 and resp.json() == {"queued": token}
    wait_for(lambda: token in fclient.get("/background").json()["done"])


def test_not_found(fclient: httpx.Client) -> None:
    assert fclient.get("/nope").status_code == 404


def test_keep_alive_reuses_connection(fclient: httpx.Client) -> None:
    for _ in range(20):
        assert fclient.get("/").status_code == 200


@pytest.fixture(scope="module")
def raw_examples(module_server_factory, loop: str):
    def serve(name: str, *args: str) -> ServerProcess:
        return module_server_factory(f"{name}:app", *args, app_dir=EXAMPLES, loop=loop)

    return serve


def test_example_hello(raw_examples) -> None:
    with client(raw_examples("hello")) as c:
        resp = c.get("/")
    assert resp.status_code == 200
    assert resp.text == "Hello, world!\n"


def test_example_echo(raw_examples) -> None:
    body = b"echo me " * 10000
    with client(raw_examples("echo")) as c:
        resp = c.post("/", content=body)
        streamed = c.post("/", content=iter([b"part1 ", b"part2"]))
    assert resp.content == body
    assert streamed.content == b"part1 part2"


def test_example_lifespan_state(raw_examples) -> None:
    with client(raw_examples("lifespan_state", "--lifespan", "on")) as c:
        resp = c.get("/")
    assert json.loads(resp.text)["greeting"] == "hello from startup"


def test_example_streaming(raw_examples) -> None:
    with client(raw_examples("streaming")) as c:
        resp = c.get("/?count=2")
    assert resp.text == "chunk 0\nchunk 1\ndone\n"
