"""The Python event-loop floor: a bare uvloop ``asyncio.Protocol`` answering canned bytes.

No ASGI, no HTTP parser, no app: it finds the end of each request head (and skips a
Content-Length body), then writes a prebuilt response, coalescing the answers to pipelined
requests into one write. No Python ASGI server can be faster than this on the same loop,
so it is the ceiling a ruvicorn row is compared against.

    python floor.py --port 8000 --workload plaintext [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

HELLO = b"Hello, world!"


def _response(body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _chunked(chunk: bytes, count: int) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: application/octet-stream\r\n"
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed * count + b"0\r\n\r\n"


CANNED = {
    "plaintext": _response(HELLO, b"text/plain"),
    "json": _response(json.dumps({"message": "Hello, world!"}).encode(), b"application/json"),
    "stream": _chunked(b"x" * 65536, 16),
}


class Floor(asyncio.Protocol):
    """One connection: split the byte stream into requests and answer each with canned bytes."""

    def __init__(self, canned: bytes | None) -> None:
        self.canned = canned  # None: echo the request body
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        close = False
        pos = 0
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = buf[pos:end].lower()
            start = end + 4
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            if len(buf) - start < length:
                break
            body = buf[start : start + length]
            pos = start + length
            answer = self.canned if self.canned is not None else _response(body, b"text/plain")
            if b"\r\nconnection: close" in head:
                out.append(answer.replace(b"\r\n", b"\r\nConnection: close\r\n", 1))
                close = True
                break
            out.append(answer)
        self.buf = buf[pos:]
        transport = self.transport
        if transport is None:
            return
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            transport.close()


async def serve(host: str, port: int, workload: str) -> None:
    canned = None if workload == "echo" else CANNED.get(workload, CANNED["plaintext"])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Floor(canned), host, port, backlog=2048)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with server:
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workload", default="plaintext", choices=[*CANNED, "echo"])
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = parser.parse_args()
    server = serve(args.host, args.port, args.workload)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(server)
    else:
        asyncio.run(server)
    sys.exit(0)


if __name__ == "__main__":
    main()
