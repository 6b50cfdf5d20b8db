"""Header floods at every head limit, byte-exact, from one client and from many at once, and
clients that dribble a head that never ends.

A head exactly at a limit is served; one byte (or one field) over is refused with its code
(414 for the request line, 431 for a field or the field count, 400 for malformed lines) and
the connection is closed. A head that grows without end is cut off by a limit (431/414) or
by ``--timeout-request-header`` (408), never later. Throughout, the worker's memory stays
bounded and an ordinary client is answered.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from adversary import OrdinaryClient, RssWatch, warm, worker
from rawhttp import RawClient, ResponseError
from realserver import ServerProcess

DEFAULTS = {"line": 8190, "fields": 100, "field_size": 8190}
TIGHT = {"line": 300, "fields": 12, "field_size": 200}
HEAD_TIMEOUT = 2  # seconds, for the dribbling clients
BOUND = 40.0  # the longest any dribbler may run before the test fails


def limit_args(limits: dict[str, int]) -> list[str]:
    return [
        "--limit-request-line",
        str(limits["line"]),
        "--limit-request-fields",
        str(limits["fields"]),
        "--limit-request-field-size",
        str(limits["field_size"]),
    ]


@pytest.fixture(scope="module", params=["defaults", "tight"])
def limited(request: pytest.FixtureRequest, module_server_factory) -> tuple[ServerProcess, dict]:
    limits = DEFAULTS if request.param == "defaults" else TIGHT
    server = module_server_factory(
        "testapp:app",
        *limit_args(limits),
        "--timeout-request-header",
        str(HEAD_TIMEOUT),
        "--no-access-log",
    )
    return server, limits


# -- heads built to an exact size


def line_of(length: int) -> bytes:
    """A request line of exactly ``length`` bytes (CRLF not counted)."""
    fixed = len(b"GET / HTTP/1.1")
    return b"GET /" + b"a" * (length - fixed) + b" HTTP/1.1"


def field_of(length: int) -> bytes:
    """A header field line of exactly ``length`` bytes (CRLF not counted)."""
    return b"X-Pad: " + b"v" * (length - len(b"X-Pad: "))


def head(line: bytes, fields: list[bytes]) -> bytes:
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def fields_of(count: int) -> list[bytes]:
    """``count`` fields in all, Host among them."""
    return [b"Host: x"] + [b"X-F%d: v" % i for i in range(count - 1)]


def cases(limits: dict[str, int]) -> dict[str, tuple[bytes, int]]:
    """Each limit exactly met (served) and exceeded by one (refused), plus malformed floods."""
    ok_line, host = b"GET /ok HTTP/1.1", [b"Host: x"]
    return {
        "line-at-limit": (head(line_of(limits["line"]), host), 200),
        "line-over": (head(line_of(limits["line"] + 1), host), 414),
        "fields-at-limit": (head(ok_line, fields_of(limits["fields"])), 200),
        "fields-over": (head(ok_line, fields_of(limits["fields"] + 1)), 431),
        "field-at-limit": (head(ok_line, [*host, field_of(limits["field_size"])]), 200),
        "field-over": (head(ok_line, [*host, field_of(limits["field_size"] + 1)]), 431),
        "name-over": (head(ok_line, [*host, b"X" * limits["field_size"] + b": v"]), 431),
        "no-colon-flood": (head(ok_line, [*host] + [b"X-No-Colon"] * 3), 400),
        "obs-fold-flood": (head(ok_line, [*host, b"X-A: a", b" folded"]), 400),
    }


def exchange_once(server: ServerProcess, data: bytes) -> tuple[int, bool]:
    """Send one head; the status and whether the server kept the connection open."""
    with server.client() as c:
        c.send(data)
        resp = c.read_response()
        if resp.status == 200:
            return resp.status, resp.keeps_alive
        leftover = c.expect_closed()
        assert b"HTTP/1." not in leftover, f"a second response followed: {leftover[:200]!r}"
        return resp.status, False


def largest_head(limits: dict[str, int]) -> bytes:
    """Every limit met at once: the longest line and the most fields, each of the most bytes
    (with the defaults about 800 KiB, more than the worker's read high-water mark)."""
    fields = [b"Host: x"] + [field_of(limits["field_size"])] * (limits["fields"] - 1)
    return head(line_of(limits["line"]), fields)


def test_each_limit_exactly(limited: tuple[ServerProcess, dict]) -> None:
    server, limits = limited
    every = {**cases(limits), "every-limit-at-once": (largest_head(limits), 200)}
    for name, (data, status) in every.items():
        mark = server.mark()
        got, alive = exchange_once(server, data)
        assert got == status, f"{name}: got {got}, expected {status}"
        seen = server.paths_seen_since(mark)
        if status == 200:
            assert alive, f"{name}: a served request closed the connection"
            assert len(seen) == 1, f"{name}: the app saw {seen}"
        else:
            assert seen == [], f"{name}: the app saw a refused request: {seen}"
    server.assert_serving()


def test_many_connections_flood_every_limit_at_once(limited: tuple[ServerProcess, dict]) -> None:
    server, limits = limited
    table = list(cases(limits).items())
    jobs = [table[i % len(table)] for i in range(40 * len(table))]
    proc = worker(server)
    warm(server)
    with RssWatch(proc) as rss, OrdinaryClient(server) as ordinary:
        with ThreadPoolExecutor(max_workers=48) as pool:
            got = list(pool.map(lambda job: exchange_once(server, job[1][0])[0], jobs))
        ordinary.wait_answers(3)
        rss.assert_bounded()
    wrong = [(name, want, g) for (name, (_, want)), g in zip(jobs, got, strict=True) if g != want]
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {wrong[:5]}"
    ordinary.assert_fine()


# -- heads that never end


def dribble(server: ServerProcess, prefix: bytes, piece: bytes, pause: float) -> tuple[int, int]:
    """Send ``prefix`` then ``piece`` every ``pause`` seconds until the server answers; the
    status it answered and how many bytes the client had sent by then."""
    with RawClient(server.host, server.port, timeout=BOUND) as c:
        sent = 0
        deadline = time.monotonic() + BOUND
        data = prefix
        while time.monotonic() < deadline:
            try:
                c.send(data)
            except OSError:
                break  # closed under us; the answer must already be on its way
            sent += len(data)
            data = piece
            readable, _, _ = select.select([c.sock], [], [], pause)
            if readable:
                break
        else:
            raise AssertionError(f"a head still open after {BOUND}s and {sent} bytes")
        try:
            resp = c.read_response()
        except ResponseError as exc:
            raise AssertionError(f"closed without an answer after {sent} bytes: {exc}") from None
        c.expect_closed()
        return resp.status, sent


DRIBBLERS: dict[str, tuple[bytes, bytes, float, set[int]]] = {
    # A field value that never ends: 431 once past the field size (or 408 first).
    "endless-value": (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Endless: ", b"a" * 97, 0.01, {408, 431}),
    # Field after field: 431 past the field count (or 408 first).
    "endless-fields": (b"GET /ok HTTP/1.1\r\nHost: x\r\n", b"X-More: yes\r\n", 0.01, {408, 431}),
    # A request target that never ends: 414 past the line limit (or 408 first).
    "endless-target": (b"GET /", b"t" * 97, 0.01, {408, 414}),
    # Slowloris: a byte now and then, far under every limit: only the head timeout helps.
    "slowloris": (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"s", 0.1, {408}),
}


def byte_bound(name: str, limits: dict[str, int]) -> int:
    """The most a dribbler may have sent before the server refused it."""
    if name == "endless-fields":
        return limits["fields"] * (limits["field_size"] + 2) + 64 * 1024
    return limits["line"] + limits["field_size"] + 64 * 1024


def test_dribbled_endless_heads_are_cut_off(limited: tuple[ServerProcess, dict]) -> None:
    server, limits = limited
    proc = worker(server)
    warm(server)
    results: list[tuple[str, int, int]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(name: str) -> Callable[[], None]:
        prefix, piece, pause, _ = DRIBBLERS[name]

        def go() -> None:
            try:
                status, sent = dribble(server, prefix, piece, pause)
            except AssertionError as exc:
                with lock:
                    errors.append(f"{name}: {exc}")
                return
            with lock:
                results.append((name, status, sent))

        return go

    threads = [threading.Thread(target=run(name)) for name in DRIBBLERS for _ in range(8)]
    with RssWatch(proc) as rss, OrdinaryClient(server) as ordinary:
        for t in threads:
            t.start()
        ordinary.wait_answers(3)
        for t in threads:
            t.join(timeout=BOUND + 20)
        rss.assert_bounded()
    assert not errors, errors[:5]
    assert len(results) == len(threads)
    for name, status, sent in results:
        assert status in DRIBBLERS[name][3], f"{name}: answered {status} after {sent} bytes"
        assert sent <= byte_bound(name, limits), f"{name}: {sent} bytes accepted before refusal"
    ordinary.assert_fine()


def test_endless_head_with_a_raw_socket_that_never_reads(
    limited: tuple[ServerProcess, dict],
) -> None:
    """A flood written without ever reading: the server must stop taking it, not buffer it."""
    server, limits = limited
    proc = worker(server)
    warm(server)
    sock = socket.create_connection((server.host, server.port), timeout=BOUND)
    sent = 0
    piece = b"X-Flood: " + b"f" * 64 + b"\r\n"
    with RssWatch(proc) as rss, OrdinaryClient(server) as ordinary:
        try:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(1.0)
            deadline = time.monotonic() + BOUND
            while time.monotonic() < deadline and sent < 64 * 1024 * 1024:
                try:
                    sent += sock.send(piece * 64)
                except TimeoutError:
                    continue
                except OSError:
                    break  # refused and closed: the flood is over
        finally:
            sock.close()
        ordinary.wait_answers(3)
        rss.assert_bounded()
    assert sent <= byte_bound("endless-fields", limits) + 8 * 1024 * 1024, (
        f"the server took {sent} bytes of one endless head"
    )
    ordinary.assert_fine()
