"""The app's Task behaves as asyncio promises on every supported interpreter: pipelined
requests never nest inside each other, ``asyncio.timeout`` and TaskGroup cancellation work
inside a request, contextvars stay per request; also when the app installs
``asyncio.eager_task_factory`` (Python 3.12+) on the loop."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from typing import Any

import pytest
from rawhttp import request
from realserver import APPS, LOOPS, ServerProcess

EAGER_MODES = ["default"] + (["eager"] if sys.version_info >= (3, 12) else [])


def _runs(loop: str, mode: str) -> bool:
    # uvloop 0.23's create_task passes `eager_start` to 3.13's eager_task_factory, which
    # refuses it: on that pair every task creation fails, the app's own included.
    return not (loop == "uvloop" and mode == "eager" and sys.version_info >= (3, 13))


@pytest.fixture(
    scope="module",
    params=[(lp, m) for lp in LOOPS for m in EAGER_MODES if _runs(lp, m)],
)
def task_server(module_server_factory: Any, request: pytest.FixtureRequest) -> ServerProcess:
    loop, mode = request.param
    env = {"TASK_APP_EAGER": "1"} if mode == "eager" else {}
    return module_server_factory("task_app:app", loop=loop, env=env)  # type: ignore[no-any-return]


def _pipelined_depths(server: ServerProcess, prefix: str, count: int) -> list[int]:
    """The stack depth each of `count` pipelined requests' apps started at, in order."""
    paths = [f"{prefix}{i}" for i in range(count)]
    with server.client() as c:
        c.send(b"".join(request("GET", path) for path in paths))
        bodies = [r.json() for r in c.read_responses(count)]
    assert [b["path"] for b in bodies] == paths
    return [b["depth"] for b in bodies]


def test_pipelined_apps_never_start_inside_another_request(task_server: ServerProcess) -> None:
    depths = _pipelined_depths(task_server, "/p/", 100)
    # Each app starts from the event loop (eagerly from data_received, or in a Task step),
    # never inside the previous app's send(): the stack depth at which apps run does not
    # grow along the pipeline (nesting would add about 3 frames per request).
    assert max(depths) - min(depths) <= 4, sorted(depths)


def test_pipelined_apps_after_responses_sent_by_child_tasks_do_not_nest(
    task_server: ServerProcess,
) -> None:
    # Each response is sent from a child Task of its app (as a streaming response is), so
    # the next app starts inside that child's send(), one level down: never deeper.
    depths = _pipelined_depths(task_server, "/child/", 60)
    assert max(depths) - min(depths) <= 6, depths


def test_context_variables_of_a_request_do_not_reach_the_next_pipelined_one(
    task_server: ServerProcess,
) -> None:
    paths = [f"/context/{i}" if i % 2 == 0 else f"/child/{i}" for i in range(20)]
    paths += [f"/p/{i}" for i in range(20, 24)]
    with task_server.client() as c:
        c.send(b"".join(request("GET", path) for path in paths))
        bodies = [r.json() for r in c.read_responses(len(paths))]
    assert [b.get("leaked") for b in bodies] == [None] * len(paths), bodies
    assert [b.get("leaked_at_call") for b in bodies] == [None] * len(paths), bodies


def test_asyncio_timeout_inside_a_request(task_server: ServerProcess) -> None:
    with task_server.client() as c:
        for _ in range(3):
            c.send(request("GET", "/timeout"))
            resp = c.read_response()
            assert resp.status == 200
            assert resp.json() == {"timed_out": True, "cancelling": 0}


def _bare_task_group_result() -> Any:
    """What the same TaskGroup code gives in a plain asyncio Task on this interpreter
    (3.11 and 3.12 leave the parent's cancel count at 1, 3.13 does not)."""
    spec = importlib.util.spec_from_file_location("task_app_bare", APPS / "task_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return asyncio.run(module._task_group())


def test_task_group_failure_inside_a_request(task_server: ServerProcess) -> None:
    with task_server.client() as c:
        c.send(request("GET", "/taskgroup"))
        resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["caught"] == ["child failed"]
    assert resp.json() == _bare_task_group_result()


def test_context_variables_stay_with_their_request(task_server: ServerProcess) -> None:
    batch = b"".join(request("GET", f"/context/{i}") for i in range(20))
    with task_server.client() as c:
        c.send(batch)
        responses = c.read_responses(20)
    for i, resp in enumerate(responses):
        path = f"/context/{i}"
        assert resp.json() == {"var": path, "child_saw": path}


def test_request_tasks_are_registered_with_asyncio_and_leave_it(task_server: ServerProcess) -> None:
    # The worker registers Tasks natively (ruvicorn/worker/task_registry.py): each
    # request's Task is listed by asyncio.all_tasks() while it runs, and its weak
    # reference leaves asyncio's set when it ends, so the set does not grow per request.
    with task_server.client() as c:
        bodies = []
        for _ in range(50):
            c.send(request("GET", "/registry"))
            bodies.append(c.read_response().json())
    assert all(body["listed"] == [True, True] for body in bodies)
    assert {body["adder"] for body in bodies} == {"TaskRegistrar"}
    assert bodies[-1]["registered"] <= bodies[0]["registered"] + 2, bodies
