"""Fixtures of the in-process protocol tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import uvloop
from mockconn import Runner, Scenario
from tlspeer import Certs


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """Run one scenario to completion on a fresh loop of each kind."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(scenario: Scenario) -> None:
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(asyncio.wait_for(scenario(), timeout=10))

    yield runner


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for localhost and a client certificate (trustme)."""
    return Certs(tmp_path_factory.mktemp("tls"))


class Lines(logging.Handler):
    """Keeps each record's message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def error_lines() -> Iterator[list[str]]:
    """What the worker's error log says (info and above) while the test runs."""
    logger = logging.getLogger("ruvicorn.error")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
