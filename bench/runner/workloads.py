"""The request patterns measured, and how a healthy answer to each looks."""

from __future__ import annotations

import dataclasses

from runner.paths import WS_MESSAGE


@dataclasses.dataclass(frozen=True)
class Workload:
    """One request pattern: what the load generator sends and how a healthy answer looks."""

    name: str
    title: str
    path: str
    app: str  # module:attribute in bench/apps
    floor: str  # what the canned-bytes floor answers (see apps/floor.py)
    connections: int = 64
    script: str | None = None  # wrk lua script in bench/apps
    headers: tuple[str, ...] = ()
    method: str = "GET"
    throughput: bool = False  # report MB/s and rank by it
    # the load generator: wrk, wsload (WebSocket echo), wsload --tls-close, h2load (HTTP/2),
    # wsload --h3 (HTTP/3)
    client: str = "wrk"
    streams: int = 1  # h2load, wsload --h3: requests in flight on each connection
    unit: str = "req"  # what one counted round trip is: a request, or a message
    tls: bool = False  # https, with the certificates minted for the run (runner/tls.py)
    access_log: bool = False  # the servers write their access log to a file
    servers: tuple[str, ...] | None = None  # only these servers run it; None: every one

    @property
    def websocket(self) -> bool:
        return self.client == "wsload"

    @property
    def http2(self) -> bool:
        return self.client == "h2load"

    @property
    def http3(self) -> bool:
        return self.client == "wsload --h3"


H2_SERVERS = ("ruvicorn", "granian", "hypercorn")  # the bench venv's servers of HTTP/2
H3_SERVERS = ("ruvicorn", "hypercorn")  # and HTTP/3

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "plaintext",
            "plaintext: GET, 13-byte body, keep-alive",
            "/",
            "benchapp:plaintext",
            "plaintext",
        ),
        Workload(
            "close",
            "close: a new connection per request (Connection: close)",
            "/",
            "benchapp:plaintext",
            "plaintext",
            headers=("Connection: close",),
        ),
        Workload(
            "echo",
            "echo: POST a 4 KiB body, echoed back",
            "/echo",
            "benchapp:echo",
            "echo",
            script="post_4k.lua",
            method="POST",
        ),
        Workload("json", "json: one FastAPI endpoint", "/json", "benchapi:app", "json"),
        Workload(
            "stream",
            "stream: 1 MiB as 16 chunks of 64 KiB (chunked)",
            "/stream",
            "benchapp:stream",
            "stream",
            connections=16,
            throughput=True,
        ),
        Workload(
            "pipeline",
            "pipeline: 16 GET requests per write",
            "/",
            "benchapp:plaintext",
            "plaintext",
            script="pipeline_16.lua",
        ),
        Workload(
            "websocket",
            f"websocket: a {len(WS_MESSAGE)}-byte text message echoed, closed loop",
            "/ws",
            "benchapp:websocket",
            "",
            client="wsload",
            unit="msg",
        ),
        Workload(
            "plaintext-accesslog",
            "plaintext-accesslog: plaintext with the access log on, written to a file",
            "/",
            "benchapp:plaintext",
            "plaintext",
            access_log=True,
            servers=("ruvicorn", "uvicorn"),
        ),
        Workload(
            "tls-plaintext",
            "tls-plaintext: plaintext over TLS (ECDSA P-256), keep-alive",
            "/",
            "benchapp:plaintext",
            "plaintext",
            tls=True,
            servers=("ruvicorn", "uvicorn", "granian", "ruvicorn-asyncio", "uvicorn-asyncio"),
        ),
        Workload(
            "tls-close",
            "tls-close: a full TLS handshake per request (no session resumption)",
            "/",
            "benchapp:plaintext",
            "plaintext",
            client="wsload --tls-close",
            tls=True,
            servers=("ruvicorn", "uvicorn", "granian"),
        ),
        Workload(
            "h2-plaintext",
            "h2-plaintext: plaintext over HTTP/2 (h2c prior knowledge), 10 streams each",
            "/",
            "benchapp:plaintext",
            "plaintext",
            client="h2load",
            streams=10,
            servers=H2_SERVERS,
        ),
        Workload(
            "h2-echo",
            "h2-echo: POST a 4 KiB body over HTTP/2 (h2c), echoed back, 10 streams each",
            "/echo",
            "benchapp:echo",
            "echo",
            method="POST",
            client="h2load",
            streams=10,
            servers=H2_SERVERS,
        ),
        Workload(
            "h2-tls-plaintext",
            "h2-tls-plaintext: plaintext over HTTP/2 over TLS (ALPN h2 only), 10 streams each",
            "/",
            "benchapp:plaintext",
            "plaintext",
            client="h2load",
            streams=10,
            tls=True,
            servers=H2_SERVERS,
        ),
        Workload(
            "h3-plaintext",
            "h3-plaintext: plaintext over HTTP/3 (QUIC, ALPN h3), 10 streams each",
            "/",
            "benchapp:plaintext",
            "plaintext",
            client="wsload --h3",
            streams=10,
            tls=True,
            servers=H3_SERVERS,
        ),
        Workload(
            "h3-echo",
            "h3-echo: POST a 4 KiB body over HTTP/3, echoed back, 10 streams each",
            "/echo",
            "benchapp:echo",
            "echo",
            method="POST",
            client="wsload --h3",
            streams=10,
            tls=True,
            servers=H3_SERVERS,
        ),
    )
}
MEMORY = "memory"  # the optional soak: plaintext for a minute, worker RSS sampled
