"""Fixtures that run a real ruvicorn process and talk to it over loopback sockets.

``python -m ruvicorn --port <free port> --app-dir tests/apps <module:app> [flags]`` is started
in its own session; the fixture waits (bounded) until the port accepts, hands the test a
``ServerProcess`` (see realserver.py), and at the end stops it with SIGTERM (SIGKILL after a
bound), asserting it exited 0 unless the test said otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from realserver import LOOPS, ServerProcess
from tlscerts import TLSCerts

Factory = Callable[..., ServerProcess]

#: Fixtures that start real server processes: a test using one is a black-box test.
PROCESS_FIXTURES = frozenset({"server_factory", "module_server_factory", "server", "start"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark black-box tests by the fixtures they use, so no test module has to remember to."""
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.blackbox)


@contextlib.contextmanager
def _server_pool(workdir: Path) -> Iterator[Factory]:
    started: list[ServerProcess] = []

    def make(app: str, *args: str, start: bool = True, **kw: Any) -> ServerProcess:
        server = ServerProcess(app, list(args), workdir, **kw)
        started.append(server)
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        problems = []
        for server in started:
            if server.proc is None:
                continue
            if server.returncode is None:
                try:
                    server.stop()
                except AssertionError as exc:
                    problems.append(str(exc))
                    continue
            if server.expect_exit is not None and server.returncode != server.expect_exit:
                problems.append(
                    f"{server.command()} exited {server.returncode}, expected "
                    f"{server.expect_exit}:\n{server.stderr()[-3000:]}"
                )
        if problems:
            pytest.fail("\n\n".join(problems))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Factory]:
    """Start servers for one test: ``server_factory("testapp:app", "--flag", loop=...)``."""
    with _server_pool(tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    with _server_pool(tmp_path_factory.mktemp("servers")) as make:
        yield make


@pytest.fixture(scope="module", params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TLSCerts:
    """The test session's CAs and certificates (see tlscerts.py)."""
    return TLSCerts(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls(request: pytest.FixtureRequest) -> TLSCerts | None:
    """The certificates a server fixture serves TLS with, or None for cleartext. None
    unless a test runs ``@over_tls`` (tlscerts.py), which makes it ``plain`` and ``tls``."""
    if getattr(request, "param", "plain") == "plain":
        return None
    certs: TLSCerts = request.getfixturevalue("tls_certs")
    return certs


@pytest.fixture(scope="module")
def server(module_server_factory: Factory, loop: str, tls: TLSCerts | None) -> ServerProcess:
    """The core test app (tests/apps/testapp.py) on each event loop, shared by a module
    (over TLS too for a test marked ``@over_tls``)."""
    return module_server_factory("testapp:app", loop=loop, tls=tls)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path
