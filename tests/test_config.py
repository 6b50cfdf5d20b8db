"""Settings: every option is readable from its RUVICORN_<NAME> environment variable, flags win
over the environment, and bad values are one-line usage errors."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
from click.testing import CliRunner

import ruvicorn.main
from ruvicorn.cli import cli
from ruvicorn.config import MAX_INT, TLS_DEPENDENT, Config, ConfigError, settings

SPECIAL: dict[str, tuple[str, Any]] = {
    "host": ("127.0.0.2", "127.0.0.2"),
    "app_dir": ("/srv/app", "/srv/app"),
    "root_path": ("/mounted", "/mounted"),
    "forwarded_allow_ips": ("10.0.0.1,10.0.0.0/8", "10.0.0.1,10.0.0.0/8"),
    "uds": ("/tmp/ruvicorn-test.sock", "/tmp/ruvicorn-test.sock"),
    "pid": ("/tmp/ruvicorn-test.pid", "/tmp/ruvicorn-test.pid"),
    "log_file": ("/tmp/ruvicorn-test.log", "/tmp/ruvicorn-test.log"),
    "header": ("x-a:1 x-b:2", ("x-a:1", "x-b:2")),
    "bind": ("127.0.0.1:9001 unix:/tmp/r.sock", ("127.0.0.1:9001", "unix:/tmp/r.sock")),
    "reload_dir": ("/srv/a /srv/b", ("/srv/a", "/srv/b")),
    "reload_include": ("*.txt", ("*.txt",)),
    "reload_exclude": ("*.tmp", ("*.tmp",)),
    "fd": ("5", 5),
    "chdir": ("/srv", "/srv"),
    "control_socket": ("/run/r/ctl.sock", "/run/r/ctl.sock"),
    "user": ("nobody", "nobody"),
    "group": ("0", "0"),
    "umask": ("027", "027"),
    "env_file": ("/srv/.env", "/srv/.env"),
    "access_log_format": ("%(h)s %(s)s", "%(h)s %(s)s"),
    "access_logfile": ("/srv/access.log", "/srv/access.log"),
    "log_config": ("/srv/logging.ini", "/srv/logging.ini"),
    "metrics_bind": ("127.0.0.1:9100", "127.0.0.1:9100"),
    "workers": ("3", 3),
    "ssl_certfile": ("/srv/cert.pem", "/srv/cert.pem"),
    "ssl_keyfile": ("/srv/key.pem", "/srv/key.pem"),
    "ssl_keyfile_password": ("s3cret", "s3cret"),
    "ssl_ca_certs": ("/srv/ca.pem", "/srv/ca.pem"),
    "ssl_cert_reqs": ("2", 2),
    "ssl_ciphers": ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
}
#: Variables a setting is only valid with (the TLS options need a certificate).
COMPANIONS: dict[str, dict[str, str]] = {
    name: {"RUVICORN_SSL_CERTFILE": "/srv/cert.pem", "RUVICORN_SSL_CA_CERTS": "/srv/ca.pem"}
    for name in TLS_DEPENDENT
}


def env_case(f: dataclasses.Field[Any]) -> tuple[str, Any]:
    """A non-default value for the setting, as an env var string and as the parsed value."""
    if f.name in SPECIAL:
        return SPECIAL[f.name]
    hint = typing.get_type_hints(Config)[f.name]
    default = f.default
    if f.metadata["choices"]:
        other = next(c for c in f.metadata["choices"] if c != default)
        return other, other
    if hint is bool:
        return ("false", False) if default else ("true", True)
    if hint is int:
        return str(default + 7), default + 7
    if hint is float:
        return str(default + 1.5), default + 1.5
    raise AssertionError(f"no test value for setting {f.name} ({hint})")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    seen: list[Config] = []

    def fake_run(config: Config, **_: Any) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(ruvicorn.main, "run_from_config", fake_run)
    for key in list(__import__("os").environ):
        if key.startswith("RUVICORN_") or key in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(key)
    return seen


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


@pytest.mark.parametrize("f", [f for f in settings() if f.name != "app"], ids=lambda f: f.name)
def test_every_option_reads_its_env_var(f: dataclasses.Field[Any], captured: list[Config]) -> None:
    raw, expected = env_case(f)
    env_name = f"RUVICORN_{f.name.upper()}"
    result = invoke(["mod:app"], {**COMPANIONS.get(f.name, {}), env_name: raw})
    assert result.exit_code == 0, result.output
    [config] = captured
    assert getattr(config, f.name) == expected, f"{env_name}={raw!r}"


def test_app_from_env(captured: list[Config]) -> None:
    result = invoke([], {"RUVICORN_APP": "pkg.mod:obj.app"})
    assert result.exit_code == 0, result.output
    assert captured[0].app == "pkg.mod:obj.app"


def test_flag_wins_over_env(captured: list[Config]) -> None:
    result = invoke(["--port", "9100", "mod:app"], {"RUVICORN_PORT": "9200"})
    assert result.exit_code == 0, result.output
    assert captured[0].port == 9100


def test_defaults(captured: list[Config]) -> None:
    invoke(["mod:app"])
    config = captured[0]
    assert config.host == "127.0.0.1"
    assert config.port == 8000
    assert config.limit_request_line == 8190
    assert config.limit_request_fields == 100
    assert config.limit_request_field_size == 8190
    assert config.limit_request_body == 0
    assert config.timeout_keep_alive == 5.0
    assert config.timeout_request_header == 10.0
    assert config.timeout_request_body == 60.0
    assert config.timeout_send == 60.0
    assert config.timeout_graceful_shutdown == 30.0
    assert config.lifespan == "auto"
    assert config.loop == "auto"
    assert config.server_header and config.date_header
    assert config.workers == 1


def test_timeout_request_body_from_flag_and_env(captured: list[Config]) -> None:
    """The body timeout is a number of seconds like the other timeouts; 0 turns it off."""
    assert invoke(["--timeout-request-body", "2.5", "mod:app"]).exit_code == 0
    assert captured[-1].timeout_request_body == 2.5
    assert invoke(["mod:app"], {"RUVICORN_TIMEOUT_REQUEST_BODY": "0"}).exit_code == 0
    assert captured[-1].timeout_request_body == 0.0
    result = invoke(
        ["--timeout-request-body", "7", "mod:app"], {"RUVICORN_TIMEOUT_REQUEST_BODY": "3"}
    )
    assert result.exit_code == 0, result.output
    assert captured[-1].timeout_request_body == 7.0
    result = CliRunner().invoke(cli, ["--timeout-request-body", "-1", "mod:app"])
    assert result.exit_code == 2
    assert "--timeout-request-body" in result.output


def test_timeout_send_from_flag_and_env(captured: list[Config]) -> None:
    """The send timeout is a number of seconds like the other timeouts; 0 turns it off."""
    assert invoke(["--timeout-send", "2.5", "mod:app"]).exit_code == 0
    assert captured[-1].timeout_send == 2.5
    assert invoke(["mod:app"], {"RUVICORN_TIMEOUT_SEND": "0"}).exit_code == 0
    assert captured[-1].timeout_send == 0.0
    result = invoke(["--timeout-send", "7", "mod:app"], {"RUVICORN_TIMEOUT_SEND": "3"})
    assert result.exit_code == 0, result.output
    assert captured[-1].timeout_send == 7.0
    result = CliRunner().invoke(cli, ["--timeout-send", "-1", "mod:app"])
    assert result.exit_code == 2
    assert "--timeout-send" in result.output


def test_web_concurrency(captured: list[Config]) -> None:
    invoke(["mod:app"], {"WEB_CONCURRENCY": "4"})
    assert captured[0].workers == 4


@pytest.mark.parametrize(
    ("name", "alias", "ours", "theirs"),
    [
        ("forwarded_allow_ips", "FORWARDED_ALLOW_IPS", "10.0.0.1", "10.9.9.9"),
        ("workers", "WEB_CONCURRENCY", "2", "5"),
    ],
)
def test_shared_env_names_are_read_and_ours_win(
    name: str, alias: str, ours: str, theirs: str, captured: list[Config]
) -> None:
    """Variables an operator already set for another ASGI server keep working."""
    assert invoke(["mod:app"], {alias: theirs}).exit_code == 0
    assert str(getattr(captured[-1], name)) == theirs
    both = {alias: theirs, f"RUVICORN_{name.upper()}": ours}
    assert invoke(["mod:app"], both).exit_code == 0
    assert str(getattr(captured[-1], name)) == ours


def test_bad_web_concurrency_is_a_usage_error(captured: list[Config]) -> None:
    result = CliRunner().invoke(cli, ["mod:app"], env={"WEB_CONCURRENCY": "0"})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: --workers must be at least 1, not 0"], (
        result.output
    )
    assert captured == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--root-path", "no-slash", "m:a"], "--root-path"),
        (["--header", "novalue", "m:a"], "--header"),
        (["--workers", "0", "m:a"], "--workers"),
        (["--limit-request-line", "0", "m:a"], "--limit-request-line"),
        (["--loop", "tokio", "m:a"], "--loop"),
        (["--port", "eighty", "m:a"], "--port"),
    ],
)
def test_bad_values_are_one_line_usage_errors(
    args: list[str], needle: str, captured: list[Config]
) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert captured == []


NUMBERS = [
    f for f in settings() if typing.get_type_hints(Config)[f.name] in (int, float, int | None)
]
BOUNDED = [f for f in settings() if f.metadata["bounds"] is not None]


def test_every_number_declares_its_range() -> None:
    assert NUMBERS, "no numeric settings found"
    assert [f.name for f in NUMBERS if f.metadata["bounds"] is None] == []


def out_of_range(f: dataclasses.Field[Any]) -> list[str]:
    """Values just outside the declared range, plus non-numbers a float must refuse."""
    low, high = f.metadata["bounds"]
    if typing.get_type_hints(Config)[f.name] is float:
        return [str(low - 0.5), str(high * 2), "nan", "inf"]
    values = [str(int(low) - 1)]
    if high < MAX_INT:
        values.append(str(int(high) + 1))
    else:
        values.append(str(MAX_INT + 1))
    return values


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--" + f.name.replace("_", "-"), v) for f in BOUNDED for v in out_of_range(f)],
)
def test_every_range_is_checked_with_one_usage_line(
    flag: str, value: str, captured: list[Config]
) -> None:
    result = CliRunner().invoke(cli, [f"{flag}={value}", "m:a"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and flag in lines[0], result.output
    assert captured == []


@pytest.mark.parametrize("f", BOUNDED, ids=lambda f: f.name)
def test_range_ends_are_accepted(f: dataclasses.Field[Any], captured: list[Config]) -> None:
    flag = "--" + f.name.replace("_", "-")
    for end in f.metadata["bounds"]:
        result = invoke([f"{flag}={end}", "m:a"], COMPANIONS.get(f.name))
        assert result.exit_code == 0, result.output
        assert getattr(captured[-1], f.name) == end


@pytest.mark.parametrize("spec", ["hello", "nosuch:", ":app", "a b:c", "mod:1x"])
def test_app_not_in_module_attr_form_is_a_usage_error(spec: str, captured: list[Config]) -> None:
    result = CliRunner().invoke(cli, [spec])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "module:attribute" in lines[0], result.output
    assert captured == []


def test_config_check_direct() -> None:
    with pytest.raises(ConfigError):
        Config(app="m:a", port=-1)


def test_default_headers_pairs() -> None:
    config = Config(app="m:a", header=("X-A: 1", "x-b:two words "))
    assert config.default_headers == [(b"x-a", b"1"), (b"x-b", b"two words")]


BOOLS = [f for f in settings() if isinstance(f.default, bool)]


@pytest.mark.parametrize("f", BOOLS, ids=lambda f: f.name)
def test_boolean_flags_take_no_value(f: dataclasses.Field[Any], captured: list[Config]) -> None:
    """``--factory mod:app`` must not swallow the app as the flag's value."""
    flag = f.metadata["secondary"] if f.default else "--" + f.name.replace("_", "-")
    result = CliRunner().invoke(cli, [flag, "mod:app"], env=COMPANIONS.get(f.name))
    assert result.exit_code == 0, result.output
    [config] = captured
    assert getattr(config, f.name) is (not f.default)
    assert config.app == "mod:app"
