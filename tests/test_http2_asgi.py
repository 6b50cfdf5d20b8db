"""HTTP/2 streams as ASGI cycles, black-box against real server processes: the access log,
pathsend, --limit-concurrency, GOAWAY with streams in flight, client resets while the app
runs. Clients: httpx over h2c prior knowledge and ALPN h2, and raw frames."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from h2raw import h2_httpx
from rawhttp import wait_for
from realserver import ServerProcess
from tlscerts import over_tls

FORMAT = "%(H)s|%(r)s|%(s)s|%(B)s|%(m)s|%(U)s"


def access_lines(server: ServerProcess) -> list[str]:
    """The ``|``-separated fields of each access line of ``FORMAT``."""
    return [
        line.split("] ", 2)[-1]
        for line in server.stderr().splitlines()
        if "|" in line and "[INFO]" in line
    ]


@over_tls
def test_access_log_one_line_per_stream(server_factory: Any, tls: Any, tmp_path: Path) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--access-log-format", FORMAT, tls=tls)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(100_000))
    gate = tmp_path / "gate"
    with h2_httpx(srv) as client:
        assert client.get("/ok").status_code == 200
        assert client.post("/echo", content=b"x" * 1000).content == b"x" * 1000
        assert (
            client.get("/stream?chunks=4&size=10").content
            == b"0" * 10 + b"1" * 10 + b"2" * 10 + b"3" * 10
        )
        assert client.get("/no-response").status_code == 500
        assert len(client.get(f"/pathsend?file={payload}").content) == 100_000
        # Logged when the response is complete, while the app still works afterwards.
        assert client.get(f"/respond-then-wait?gate={gate}").content == b"answered"
        wait_for(lambda: any("/respond-then-wait" in line for line in access_lines(srv)))
        gate.touch()
    wait_for(lambda: len(access_lines(srv)) >= 6)
    assert sorted(access_lines(srv)) == sorted(
        [
            "HTTP/2|GET /ok HTTP/2|200|2|GET|/ok",
            "HTTP/2|POST /echo HTTP/2|200|1000|POST|/echo",
            "HTTP/2|GET /stream?chunks=4&size=10 HTTP/2|200|40|GET|/stream",
            "HTTP/2|GET /no-response HTTP/2|500|-|GET|/no-response",
            f"HTTP/2|GET /pathsend?file={payload} HTTP/2|200|100000|GET|/pathsend",
            f"HTTP/2|GET /respond-then-wait?gate={gate} HTTP/2|200|8|GET|/respond-then-wait",
        ]
    )


def test_access_log_json_fields_of_a_stream(server_factory: Any) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--log-format", "json")
    with h2_httpx(srv) as client:
        resp = client.post("/echo?q=1", content=b"hello", headers={"x-request-id": "h2-7"})
    assert resp.status_code == 200 and resp.http_version == "HTTP/2"

    def record() -> dict[str, Any] | None:
        for line in srv.stderr().splitlines():
            if '"h2-7"' in line:
                parsed: dict[str, Any] = json.loads(line)
                return parsed
        return None

    access = wait_for(record)
    assert access["logger"] == "ruvicorn.access"
    assert access["method"] == "POST"
    assert access["path"] == "/echo"
    assert access["query"] == "q=1"
    assert access["protocol"] == "HTTP/2"
    assert access["status"] == 200
    assert access["bytes"] == 5
    assert access["client"].startswith("127.0.0.1:")
    assert '"POST /echo?q=1 HTTP/2" 200' in access["message"]
