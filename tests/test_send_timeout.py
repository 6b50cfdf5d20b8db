"""``--timeout-send`` against a real server (1 s; the sweep runs about once a second, so
an expiry is looked for within generous bounds, never timed tightly).

A client that asks for a large streaming response and reads none of it has its
connection aborted once the server's write buffer has stayed full for the timeout; a
second client is served normally meanwhile.
"""

from __future__ import annotations

import socket
import time

import pytest
from rawhttp import request
from realserver import ServerProcess

BOUND = 20.0  # the most any wait here lasts; the configured timeout is 1 s
#: Far more than the kernel's buffers on both ends hold for a client that reads nothing.
CHUNKS, SIZE = 256, 64 * 1024


@pytest.fixture(scope="module")
def send_server(module_server_factory, loop: str) -> ServerProcess:
    return module_server_factory("testapp:app", "--timeout-send", "1", loop=loop)


def ended(sock: socket.socket, bound: float) -> tuple[bool, int]:
    """Read ``sock`` until the server ends the connection (EOF or reset) or ``bound``
    seconds pass: whether it ended, and how many bytes came."""
    deadline = time.monotonic() + bound
    got = 0
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            return False, got
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        if not chunk:
            return True, got
        got += len(chunk)
    return False, got


def test_a_client_that_reads_nothing_is_cut(send_server: ServerProcess) -> None:
    total = CHUNKS * SIZE
    with send_server.client(timeout=BOUND) as stuck:
        stuck.send(request("GET", f"/stream?chunks={CHUNKS}&size={SIZE}&cl=1"))
        # Reads nothing for long enough that the timeout and a sweep or two pass.
        time.sleep(4)
        with send_server.client(timeout=BOUND) as other:
            other.send(request("GET", "/stream?chunks=3&size=5"))
            resp = other.read_response()
            assert (resp.status, resp.body) == (200, b"000001111122222")
        send_server.wait_log(
            r"Send timed out to 127\.0\.0\.1: the client read nothing "
            r"for 1(\.0)? s \(--timeout-send\)",
            timeout=BOUND,
        )
        # What reached the client's buffers before the cut may still be read; then
        # the connection ends, short of the whole response.
        closed, got = ended(stuck.sock, BOUND)
        assert closed, "the connection was never ended"
        assert got < total
    send_server.assert_serving()
