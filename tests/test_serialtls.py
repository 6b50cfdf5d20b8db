"""serialtls.py, the TLS socket the WebSocket tests hand the `websockets` client: a send
is never held up by a thread waiting in ``recv()``, and what ``recv()`` does not need yet
stays in the socket, where the client's wait for readability sees it."""

from __future__ import annotations

import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
from serialtls import SerialTLS, SerialTLSSocket
from tlscerts import TLSCerts

TIMEOUT = 10.0


@pytest.fixture
def pair(tls_certs: TLSCerts) -> Iterator[tuple[SerialTLSSocket, ssl.SSLSocket]]:
    """A client (the wrapper) and a server (a plain ``ssl.SSLSocket``) over a socket pair,
    handshake done."""
    client_sock, server_sock = socket.socketpair()
    client_sock.settimeout(TIMEOUT)
    server_sock.settimeout(TIMEOUT)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_certs.server.certfile, tls_certs.server.keyfile)
    accepted: list[ssl.SSLSocket] = []
    accepting = threading.Thread(
        target=lambda: accepted.append(context.wrap_socket(server_sock, server_side=True))
    )
    accepting.start()
    client = SerialTLS(tls_certs.client_context()).wrap_socket(client_sock, "localhost")
    accepting.join(TIMEOUT)
    [server] = accepted
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def in_thread(call: Callable[[], bytes]) -> tuple[threading.Thread, list[bytes]]:
    out: list[bytes] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


def test_a_send_goes_out_while_another_thread_waits_in_recv(
    pair: tuple[SerialTLSSocket, ssl.SSLSocket],
) -> None:
    client, server = pair
    reader, got = in_thread(lambda: client.recv(1024))
    reader.join(0.2)
    assert reader.is_alive()  # waiting: the server has sent nothing yet
    client.sendall(b"ping")
    assert server.recv(1024) == b"ping"
    server.sendall(b"pong")
    reader.join(TIMEOUT)
    assert got == [b"pong"]


def test_records_not_read_yet_stay_visible_to_select(
    pair: tuple[SerialTLSSocket, ssl.SSLSocket],
) -> None:
    client, server = pair
    server.sendall(b"one")
    server.sendall(b"two")  # a record of its own
    with selectors.DefaultSelector() as selector:
        selector.register(client.sock, selectors.EVENT_READ)
        assert selector.select(TIMEOUT)
        # (a TLS 1.3 server's session tickets may come first: recv() skips them)
        assert client.recv(1024) == b"one"
        assert selector.select(0), "the second record was read off the socket and hidden"
        assert client.recv(1024) == b"two"


def test_the_end_of_the_connection_reads_as_empty(
    pair: tuple[SerialTLSSocket, ssl.SSLSocket],
) -> None:
    client, server = pair
    server.sendall(b"last")
    server.close()  # without close_notify, as a server that drops a connection does
    assert client.recv(1024) == b"last"
    assert client.recv(1024) == b""
