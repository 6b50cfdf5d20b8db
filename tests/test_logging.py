"""Black-box tests of --log-format, --access-log-format, --access-logfile and --log-config."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rawhttp import exchange, request, wait_for
from realserver import ServerProcess

from ruvicorn import logconfig
from ruvicorn.access import ATOMS, AccessLogger, atoms
from ruvicorn.config import Config, ConfigError
from ruvicorn.logs import (
    ACCESS_FIELDS,
    AtomicLineHandler,
    IsoClock,
    JsonFormatter,
    SecondClock,
    TextFormatter,
)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as a JSON object; a line that is not one fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_format_writes_one_object_per_record(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--log-format", "json")
    headers = [("User-Agent", "probe/1.0"), ("X-Request-Id", "req-42")]
    assert srv.get("/ok?json=1", headers=headers).status == 200
    assert srv.get("/raise-before").status == 500
    wait_for(lambda: "req-42" in srv.stderr() and '"path": "/raise-before"' in srv.stderr())
    records = json_lines(srv.stderr())
    for record in records:
        assert {"time", "level", "pid", "logger", "message"} <= record.keys(), record
    access = next(r for r in records if r.get("request_id") == "req-42")
    assert access["logger"] == "ruvicorn.access"
    assert access["method"] == "GET"
    assert access["path"] == "/ok"
    assert access["query"] == "json=1"
    assert access["protocol"] == "HTTP/1.1"
    assert access["status"] == 200
    assert access["bytes"] == 2
    assert isinstance(access["duration_ms"], (int, float))
    assert access["client"].startswith("127.0.0.1:")
    assert access["user_agent"] == "probe/1.0"
    assert '"GET /ok?json=1 HTTP/1.1" 200' in access["message"]
    failed = next(r for r in records if "exception" in r)
    assert failed["level"] == "ERROR"
    assert "RuntimeError: raised before the response started" in failed["exception"]
    plain = next(r for r in records if r.get("path") == "/raise-before")
    assert "request_id" not in plain
    assert plain["status"] == 500


def test_access_log_format_atoms(server_factory) -> None:
    fmt = "%(h)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(b)s|%(a)s|%({x-custom}i)s|%({absent}i)s|%(r)s"
    srv: ServerProcess = server_factory("testapp:app", "--access-log-format", fmt)
    srv.get("/ok?a=b", headers=[("User-Agent", "ua"), ("X-Custom", "hello")])
    line = wait_for(lambda: [x for x in srv.stderr().splitlines() if "|GET|" in x])[0]
    assert line.endswith("127.0.0.1|GET|/ok|a=b|HTTP/1.1|200|2|ua|hello|-|GET /ok?a=b HTTP/1.1")


def test_access_log_response_header_atoms(server_factory) -> None:
    fmt = "%(U)s|%({x-body-messages}o)s|%({Content-Type}o)s|%({absent}o)s|%({x-custom}i)s"
    srv: ServerProcess = server_factory("testapp:app", "--access-log-format", fmt)
    resp = exchange(srv.host, srv.port, request("POST", "/echo", body=b"hi"))
    assert resp.status == 200
    srv.get("/raise-before")  # ruvicorn's own 500: the app sent no headers

    def access_lines() -> list[str]:
        return [x for x in srv.stderr().splitlines() if "|" in x]

    wait_for(lambda: len(access_lines()) >= 2)
    lines = access_lines()
    assert lines[0].endswith("/echo|1|text/plain|-|-"), lines
    assert lines[1].endswith("/raise-before|-|-|-|-"), lines


def test_access_log_bytes_of_a_streamed_body(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--access-log-format", "%(U)s %(B)s")
    body = b"y" * 3000
    resp = exchange(srv.host, srv.port, request("POST", "/echo-stream", body=body))
    assert resp.status == 200
    assert len(resp.body) >= 3000
    line = wait_for(lambda: [x for x in srv.stderr().splitlines() if "/echo-stream " in x])[0]
    assert line.endswith(f"/echo-stream {len(resp.body)}")


def test_access_log_bytes_of_pathsend(server_factory, tmp_path: Path) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--access-log-format", "%(U)s %(B)s")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"p" * 300_000)
    resp = srv.get(f"/pathsend?file={payload}")
    assert resp.status == 200 and len(resp.body) == 300_000
    line = wait_for(lambda: [x for x in srv.stderr().splitlines() if "/pathsend " in x])[0]
    assert line.endswith("/pathsend 300000")


def test_access_logfile_and_reopen(server_factory, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    srv: ServerProcess = server_factory("testapp:app", "--access-logfile", str(access))
    srv.get("/ok?first")
    wait_for(lambda: access.exists() and "/ok?first" in access.read_text())
    assert "/ok?first" not in srv.stderr()
    assert "Ready:" not in access.read_text()
    rotated = tmp_path / "access.log.1"
    access.rename(rotated)
    srv.send_signal(signal.SIGUSR1)
    wait_for(lambda: "Received SIGUSR1" in srv.stderr())
    # The master logs that line before its worker has reopened the file: lines until then
    # still go to the rotated one. Probe until the worker writes to the new file; from
    # then on, no line may reach the old one.
    probes = itertools.count()

    def logged_anew() -> bool:
        probe = f"/ok?probe-{next(probes)}"
        srv.get(probe)
        return access.exists() and probe in access.read_text()

    wait_for(logged_anew)
    srv.get("/ok?second")
    wait_for(lambda: "/ok?second" in access.read_text())
    assert "/ok?second" not in rotated.read_text()


def test_log_config_json(server_factory, tmp_path: Path) -> None:
    out = tmp_path / "configured.log"
    config = {
        "version": 1,
        "formatters": {"tagged": {"format": "TAGGED %(name)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(out), "formatter": "tagged"}
        },
        "loggers": {"ruvicorn.access": {"handlers": ["file"], "level": "INFO"}},
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    srv: ServerProcess = server_factory("testapp:app", "--log-config", str(path))
    srv.get("/ok?configured")
    done = '"GET /ok?configured HTTP/1.1" 200'
    line = wait_for(
        lambda: [x for x in out.read_text().splitlines() if done in x] if out.exists() else []
    )[0]
    assert line.startswith("TAGGED ruvicorn.access "), line
    # Loggers the file leaves alone keep ruvicorn's setup.
    # (The master logs it once the worker reports ready, maybe after the first answer.)
    wait_for(lambda: "Ready:" in srv.stderr())


def test_log_config_ini(server_factory, tmp_path: Path) -> None:
    path = tmp_path / "logging.ini"
    path.write_text(
        "[loggers]\nkeys=root,access\n\n"
        "[handlers]\nkeys=err\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nhandlers=\n\n"
        "[logger_access]\nqualname=ruvicorn.access\nhandlers=err\npropagate=0\n\n"
        "[handler_err]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stderr,)\n\n"
        "[formatter_plain]\nformat=INI-ACCESS %(message)s\n"
    )
    srv: ServerProcess = server_factory("testapp:app", "--log-config", str(path))
    srv.get("/ok?ini")
    wait_for(lambda: "INI-ACCESS " in srv.stderr() and "/ok?ini" in srv.stderr())


def test_log_config_errors_are_one_line(server_factory, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}')
    for path, needle in ((bad, "bad.json"), (tmp_path / "missing.ini", "no such file")):
        srv: ServerProcess = server_factory("testapp:app", "--log-config", str(path), start=False)
        srv.expect_exit = 2
        srv.start(wait=False)
        assert srv.wait_exit() == 2
        lines = [x for x in srv.stderr().splitlines() if "--log-config" in x]
        assert len(lines) == 1 and needle in lines[0], srv.stderr()
        assert "Traceback" not in srv.stderr()


# -- in-process units


@pytest.mark.parametrize(
    ("fmt", "needle"),
    [
        ("%(h)s %(nope)s", "unknown atom %(nope)s"),
        ("%(h)s %({x-a}q)s", "unknown atom %({x-a}q)s"),
    ],
)
def test_access_log_format_problems_are_one_line(fmt: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(access_log_format=fmt)
    assert str(caught.value) == f"--access-log-format: {needle}"


def test_access_records_keep_their_fields_as_data() -> None:
    scope = {
        "method": "PUT",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "http_version": "1.0",
        "client": ("10.0.0.9", 5555),
        "headers": [(b"authorization", b"Basic " + base64.b64encode(b"ann:secret"))],
    }
    record = logging.LogRecord("ruvicorn.access", logging.INFO, "", 0, "%(u)s %(r)s", None, None)
    record.args = atoms(scope, 204, 0, 0.0015)
    assert record.getMessage() == "ann PUT /a%20b?x=1 HTTP/1.0"
    assert isinstance(record.args, dict)
    assert record.args["client"] == "10.0.0.9:5555"
    assert record.args["b"] == "-" and record.args["B"] == 0
    assert record.args["D"] == 1500 and record.args["duration_ms"] == 1.5
    shown = json.loads(JsonFormatter().format(record))
    assert shown["method"] == "PUT" and shown["status"] == 204 and shown["bytes"] == 0
    assert "user_agent" not in shown and "request_id" not in shown


def test_response_header_atoms_read_the_headers_given() -> None:
    scope = {"method": "GET", "path": "/", "headers": [(b"x-a", b"request")]}
    sent = [(b"X-A", b"one"), [b"x-a", b"two"], (b"vary", b"accept")]

    def line(fmt: str, response_headers: Any) -> str:
        record = logging.LogRecord("ruvicorn.access", logging.INFO, "", 0, fmt, None, None)
        record.args = atoms(scope, 200, 3, 0.001, response_headers)
        return record.getMessage()

    fmt = "%({x-a}o)s %({X-A}i)s %({vary}o)s %({nope}o)s"
    assert line(fmt, sent) == "one,two request accept -"
    assert line(fmt, None) == "- request - -"


def test_response_headers_are_kept_only_for_a_format_that_reads_them() -> None:
    assert AccessLogger('%(h)s "%({location}o)s"').response_headers
    assert not AccessLogger('%(h)s "%({location}i)s"').response_headers
    assert not AccessLogger(None).response_headers
    Config(access_log_format="%({location}o)s")  # accepted now


def test_json_tracebacks_stay_inside_their_record() -> None:
    try:
        raise ValueError("inside")
    except ValueError:
        record = logging.LogRecord(
            "ruvicorn.error", logging.ERROR, "", 0, "failed %s", ("here",), sys.exc_info()
        )
    text = JsonFormatter().format(record)
    assert "\n" not in text
    shown = json.loads(text)
    assert shown["message"] == "failed here"
    assert shown["exception"].startswith("Traceback") and "ValueError: inside" in shown["exception"]


def test_yaml_log_config_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = tmp_path / "logging.yaml"
    path.write_text("version: 1\n")
    with pytest.raises(ConfigError, match="needs PyYAML"):
        logconfig.apply(str(path))


def test_access_logfile_dash_is_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    handler = AtomicLineHandler("-")
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.LogRecord("ruvicorn.access", logging.INFO, "", 0, "to stdout", None, None))
    out, err = capfd.readouterr()
    assert out == "to stdout\n" and err == ""


HELLO_SCOPE: dict[str, Any] = {
    "method": "GET",
    "path": "/p",
    "query_string": b"q=1",
    "http_version": "1.1",
    "client": ("10.1.2.3", 4567),
    "headers": [(b"user-agent", b"probe/2"), (b"referer", b"http://r/")],
}


def test_atoms_compute_each_field_once_and_show_them_all() -> None:
    fields = atoms(HELLO_SCOPE, 200, 5, 0.25)
    assert dict.__len__(fields) == 2  # the status; the rest is computed when read
    assert fields["r"] == "GET /p?q=1 HTTP/1.1"
    assert dict.__len__(fields) == 3
    assert "status" in fields and "nope" not in fields and 0 not in fields
    with pytest.raises(KeyError):
        fields[0]  # type: ignore[index]
    assert fields.get("a") == "probe/2" and fields.get("nope", "x") == "x"
    shown = dict(fields)
    assert set(shown) == set(ACCESS_FIELDS) | ATOMS and len(fields) == len(shown)
    assert shown["client"] == "10.1.2.3:4567" and shown["f"] == "http://r/"
    assert shown["M"] == 250 and shown["T"] == 0 and shown["p"] == f"<{os.getpid()}>"
    assert json.loads(json.dumps(fields))["user_agent"] == "probe/2"


def test_second_clock_formats_once_per_second() -> None:
    calls: list[float | None] = []

    def converter(when: float | None) -> time.struct_time:
        calls.append(when)
        return time.gmtime(when)

    clock = SecondClock()
    fmt = "%H:%M:%S"
    assert clock.text(1000.1, fmt, converter) == "00:16:40"
    assert clock.text(1000.9, fmt, converter) == "00:16:40"
    assert len(calls) == 1
    assert clock.text(1001.0, fmt, converter) == "00:16:41"  # rolls over with the second
    assert clock.text(1001.5, "%S", converter) == "41"  # another format is formatted anew
    assert len(calls) == 3


def test_text_formatter_time_matches_strftime() -> None:
    formatter = TextFormatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S %z")
    for created in (1_700_000_000.2, 1_700_000_000.7, 1_700_000_001.0):
        record = logging.LogRecord("x", logging.INFO, "", 0, "m", None, None)
        record.created = created
        expected = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(created))
        assert formatter.format(record) == f"{expected} m"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured_access() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("ruvicorn.access")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def test_access_record_is_a_whole_log_record(captured_access: Captured) -> None:
    AccessLogger("%(h)s %(s)s %(t)s")(HELLO_SCOPE, 404, 0, 0.001, None)
    (record,) = captured_access.records
    made = logging.LogRecord("ruvicorn.access", logging.INFO, "", 0, "", None, None)
    assert set(made.__dict__) <= set(record.__dict__)
    assert record.name == "ruvicorn.access" and record.levelname == "INFO"
    assert record.process == os.getpid() and record.thread == threading.get_ident()
    assert abs(record.created - time.time()) < 60 and 0 <= record.msecs < 1000
    assert record.getMessage().startswith("10.1.2.3 404 [")
    assert isinstance(record.args, dict) and record.args["status"] == 404
    line = logging.Formatter("%(process)d %(module)s %(message)s").format(record)
    assert line.startswith(f"{os.getpid()} access 10.1.2.3 404")


def test_access_records_come_from_an_installed_record_factory(captured_access: Captured) -> None:
    default = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = default(*args, **kwargs)
        record.tagged = True
        return record

    logging.setLogRecordFactory(factory)
    try:
        AccessLogger(None)(HELLO_SCOPE, 200, 1, 0.001, None)
    finally:
        logging.setLogRecordFactory(default)
    (record,) = captured_access.records
    assert record.__dict__.get("tagged") is True
    assert record.getMessage() == '10.1.2.3:4567 - "GET /p?q=1 HTTP/1.1" 200'


def test_access_logger_filters_apply(captured_access: Captured) -> None:
    def server_errors(record: logging.LogRecord) -> bool:
        return isinstance(record.args, dict) and record.args["status"] >= 500

    logger = logging.getLogger("ruvicorn.access")
    logger.addFilter(server_errors)
    try:
        AccessLogger("%(s)s")(HELLO_SCOPE, 200, 1, 0.001, None)
        AccessLogger("%(s)s")(HELLO_SCOPE, 502, 1, 0.001, None)
    finally:
        logger.removeFilter(server_errors)
    assert [r.getMessage() for r in captured_access.records] == ["502"]


def test_no_access_record_below_the_level(captured_access: Captured) -> None:
    logging.getLogger("ruvicorn.access").setLevel(logging.WARNING)
    AccessLogger(None)(HELLO_SCOPE, 200, 1, 0.001, None)
    assert captured_access.records == []


def test_access_records_carry_the_pid_of_a_forked_child(captured_access: Captured) -> None:
    logger = AccessLogger("%(p)s")
    logger(HELLO_SCOPE, 200, 1, 0.001, None)  # prepares the parent's fields
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            captured_access.records.clear()
            logger(HELLO_SCOPE, 200, 1, 0.001, None)
            (record,) = captured_access.records
            os.write(write, f"{record.process} {record.getMessage()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    os.waitpid(child, 0)
    assert reported == f"{child} <{child}>"
    assert captured_access.records[0].process == os.getpid()


def test_iso_clock_matches_datetime() -> None:
    clock = IsoClock()
    base = 1_700_000_000
    for created in (
        base + 0.0,
        base + 0.0004,
        base + 0.0015,
        base + 0.9994,
        base + 0.9999995,  # rounds up to the next second
        base + 0.9999996,
        base + 1.25,
        base + 3600.5,
        1.5,
        *(base + 7 + step * 0.000137 for step in range(20_000)),
    ):
        expected = datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")
        assert clock.text(created) == expected, created


def test_text_formatter_writes_what_the_standard_formatter_writes() -> None:
    fmt, datefmt = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "%H:%M:%S %z"
    ours, standard = TextFormatter(fmt, datefmt), logging.Formatter(fmt, datefmt)
    try:
        raise ValueError("inside")
    except ValueError:
        failed = sys.exc_info()
    for exc_info, stack in ((None, None), (failed, None), (None, "Stack (most recent call last)")):
        record = logging.LogRecord("x", logging.ERROR, "", 0, "n=%d", (3,), exc_info, sinfo=stack)
        line = ours.format(record)
        assert line == standard.format(record)
        assert ("ValueError: inside" in line) == (exc_info is not None)


def test_use_colors_colors_only_the_level_name_and_only_for_its_own_lines() -> None:
    colored = TextFormatter("[%(levelname)s] %(message)s", colors=True)
    plain = TextFormatter("[%(levelname)s] %(message)s")
    record = logging.LogRecord("ruvicorn.error", logging.WARNING, __file__, 1, "hi", None, None)
    assert colored.format(record) == "[\x1b[33mWARNING\x1b[0m] hi"
    # Another handler of the same record sees it unchanged.
    assert plain.format(record) == "[WARNING] hi"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "ruvicorn.error", logging.ERROR, __file__, 1, "bad", None, sys.exc_info()
        )
    text = colored.format(failed)
    assert text.startswith("[\x1b[31mERROR\x1b[0m] bad\nTraceback") and "ValueError: boom" in text


def test_use_colors_reaches_the_server_lines(server_factory) -> None:
    srv: ServerProcess = server_factory("testapp:app", "--use-colors")
    srv.get("/ok")
    wait_for(lambda: "[\x1b[32mINFO\x1b[0m]" in srv.stderr())
