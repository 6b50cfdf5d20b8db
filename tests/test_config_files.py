"""Config files (TOML, pyproject, Python with hooks), their precedence, --print-config,
--check-config, the compatibility spellings of flags and the --env-file parser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ruvicorn.main
from ruvicorn import coerce, configfile, envfile
from ruvicorn.cli import cli
from ruvicorn.config import Config, ConfigError
from ruvicorn.hooks import NO_HOOKS, ServerHooks

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Config, ServerHooks]]:
    """What the command would serve, instead of serving it; cwd is an empty directory."""
    seen: list[tuple[Config, ServerHooks]] = []

    def fake_run(config: Config, hooks: ServerHooks = NO_HOOKS, app: Any = None) -> int:
        seen.append((config, hooks))
        return 0

    monkeypatch.setattr(ruvicorn.main, "run_from_config", fake_run)
    for key in list(os.environ):
        if key.startswith("RUVICORN_") or key in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return seen


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def one_error_line(result: Any) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return str(lines[0])


# -- TOML and discovery


def test_toml_file_sets_options(runs: list[Any], tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        'app = "main:app"\nworkers = 4\ngraceful-timeout = 12\nbind = ["127.0.0.1:9001"]\n'
        "timeout_keep_alive = 7\naccess_log = false\n"
    )
    result = invoke(["--config", str(path)])
    assert result.exit_code == 0, result.output
    config, _ = runs[0]
    assert config.app == "main:app"
    assert config.workers == 4
    assert config.timeout_graceful_shutdown == 12.0
    assert config.bind == ("127.0.0.1:9001",)
    assert config.timeout_keep_alive == 7.0
    assert config.access_log is False


def test_ruvicorn_toml_in_the_working_directory_is_read(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "ruvicorn.toml").write_text("workers = 3\n")
    assert invoke(["m:a"]).exit_code == 0
    assert runs[0][0].workers == 3


def test_pyproject_tool_table_is_read(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ruvicorn]\nworkers = 5\napp = "pkg:app"\n'
    )
    assert invoke([]).exit_code == 0
    assert (runs[0][0].workers, runs[0][0].app) == (5, "pkg:app")


def test_pyproject_without_the_table_is_ignored(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert invoke(["m:a"]).exit_code == 0
    assert runs[0][0].workers == 1


def test_explicit_config_wins_over_the_discovered_one(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "ruvicorn.toml").write_text("workers = 3\n")
    (tmp_path / "other.toml").write_text("backlog = 99\n")
    assert invoke(["-c", "other.toml", "m:a"]).exit_code == 0
    assert (runs[0][0].workers, runs[0][0].backlog) == (1, 99)


def test_precedence_command_line_env_file_default(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "ruvicorn.toml").write_text("workers = 3\nbacklog = 77\nport = 9100\n")
    env = {"RUVICORN_WORKERS": "4", "RUVICORN_PORT": "9200"}
    assert invoke(["--port", "9300", "m:a"], env).exit_code == 0
    config = runs[0][0]
    assert config.port == 9300  # command line over environment and file
    assert config.workers == 4  # environment over file
    assert config.backlog == 77  # file over default
    assert config.limit_request_line == 8190  # default


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("workerz = 3\n", ["unknown setting 'workerz'", "did you mean 'workers'"]),
        ("[server]\nworkers = 3\n", ["unknown setting 'server'"]),
        ("workers = 0\n", ["--workers must be at least 1, not 0"]),
        ('workers = "four"\n', ["workers must be a whole number"]),
        ('loop = "tokio"\n', ["loop must be one of"]),
        ("access_log = 3\n", ["access_log must be true or false"]),
        ("timeout_keep_alive = -1\n", ["--timeout-keep-alive must be at least 0"]),
        ('worker_class = "uvicorn.workers.UvicornWorker"\n', ["built in"]),
        ("workers = \n", ["not valid TOML"]),
    ],
)
def test_bad_file_values_are_one_line_naming_the_file(
    runs: list[Any], tmp_path: Path, text: str, needles: list[str]
) -> None:
    (tmp_path / "bad.toml").write_text(text)
    result = CliRunner().invoke(cli, ["-c", "bad.toml", "m:a"])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "bad.toml" in line
    for needle in needles:
        assert needle in line
    assert runs == []


def test_missing_config_file_is_one_line(runs: list[Any]) -> None:
    result = CliRunner().invoke(cli, ["-c", "nope.toml", "m:a"])
    assert result.exit_code == 2
    assert "nope.toml" in one_error_line(result)


def test_config_file_from_env(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("workers = 2\n")
    assert invoke(["m:a"], {"RUVICORN_CONFIG": "x.toml"}).exit_code == 0
    assert runs[0][0].workers == 2


def test_missing_app_is_one_line(runs: list[Any]) -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 2
    assert "APP" in one_error_line(result)


# -- Python config files


def test_python_file_settings_and_hooks(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text(
        "import multiprocessing\n"
        "from os import cpu_count\n"
        "bind = '127.0.0.1:9005'\n"
        "workers = 2\n"
        "timeout = 45\n"
        "graceful_timeout = 11\n"
        "keepalive = 3\n"
        "pidfile = 'app.pid'\n"
        "loglevel = 'debug'\n"
        "preload_app = True\n"
        "umask = 0o027\n"
        "_private = object()\n"
        "def _helper():\n    return 1\n"
        "def on_starting(server):\n    pass\n"
        "def post_fork(server, worker):\n    pass\n"
    )
    result = invoke(["-c", "gunicorn.conf.py", "m:a"])
    assert result.exit_code == 0, result.output
    config, hooks = runs[0]
    assert config.bind == ("127.0.0.1:9005",)
    assert config.workers == 2
    assert config.timeout_worker == 45.0
    assert config.timeout_graceful_shutdown == 11.0
    assert config.timeout_keep_alive == 3.0
    assert config.pid == "app.pid"
    assert config.log_level == "debug"
    assert config.preload is True
    assert config.umask_bits == 0o027
    assert hooks.names() == ["on_starting", "post_fork"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("def post_frok(server, worker):\n    pass\n", "unknown hook 'post_frok'"),
        ("def pre_request(worker, req):\n    pass\n", "hook 'pre_request' is not supported"),
        ("threads = 4\n", "use --workers"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("wurkers = 2\n", "unknown setting 'wurkers'"),
    ],
)
def test_bad_python_files_are_one_line(
    runs: list[Any], tmp_path: Path, text: str, needle: str
) -> None:
    (tmp_path / "conf.py").write_text(text)
    result = CliRunner().invoke(cli, ["-c", "conf.py", "m:a"])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert needle in line and "conf.py" in line


# -- --print-config and --check-config


def test_print_config_names_every_source(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "ruvicorn.toml").write_text("workers = 3\nbacklog = 50\n")
    result = invoke(
        ["--print-config", "--port", "9001", "m:a"],
        {"WEB_CONCURRENCY": "4", "RUVICORN_BACKLOG": "60"},
    )
    assert result.exit_code == 0, result.output
    lines = {line.split(" = ")[0]: line for line in result.output.splitlines()}
    assert lines["port"].endswith("# command line") and "9001" in lines["port"]
    assert lines["workers"].endswith("# WEB_CONCURRENCY") and " 4 " in lines["workers"] + " "
    assert lines["backlog"].endswith("# RUVICORN_BACKLOG")
    assert lines["host"].endswith("# default")
    assert set(lines) >= {f.name for f in __import__("dataclasses").fields(Config)}
    assert runs == []


def test_print_config_shows_the_file_and_its_hooks(runs: list[Any], tmp_path: Path) -> None:
    (tmp_path / "c.py").write_text("workers = 2\ndef when_ready(server):\n    pass\n")
    result = invoke(["--print-config", "-c", "c.py"])
    assert result.exit_code == 0, result.output
    assert "workers = 2" in result.output and "# c.py" in result.output
    assert "when_ready" in result.output


def test_check_config_imports_the_app(runs: list[Any]) -> None:
    result = invoke(["--check-config", "--app-dir", str(APPS), "testapp:app"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    assert runs == []


def test_check_config_fails_with_one_line(runs: list[Any]) -> None:
    result = CliRunner().invoke(cli, ["--check-config", "--app-dir", str(APPS), "testapp:nope"])
    assert result.exit_code == 3
    assert "has no attribute 'nope'" in one_error_line(result)
    result = CliRunner().invoke(cli, ["--check-config", "--chdir", "/no/such/dir", "m:a"])
    assert result.exit_code == 2
    assert "--chdir" in one_error_line(result)


# -- other servers' spellings


@pytest.mark.parametrize(
    ("args", "name", "expected"),
    [
        (["-t", "40"], "timeout_worker", 40.0),
        (["--timeout", "41"], "timeout_worker", 41.0),
        (["--timeout-notify", "42"], "timeout_worker", 42.0),
        (["--graceful-timeout", "9"], "timeout_graceful_shutdown", 9.0),
        (["--keep-alive", "4"], "timeout_keep_alive", 4.0),
        (["--max-requests", "1000"], "limit_max_requests", 1000),
        (["--max-requests-jitter", "50"], "limit_max_requests_jitter", 50),
        (["--limit-request-field_size", "100"], "limit_request_field_size", 100),
        (["-p", "x.pid"], "pid", "x.pid"),
        (["--pid", "y.pid"], "pid", "y.pid"),
        (["--error-logfile", "err.log"], "log_file", "err.log"),
        (["--error-logfile", "-"], "log_file", None),
        (["--access-logfile", "-"], "access_logfile", "-"),
        (["--access-logformat", "%(h)s %(s)s"], "access_log_format", "%(h)s %(s)s"),
        (["--log-config", "logging.ini"], "log_config", "logging.ini"),
        (["--reload-delay", "1.5"], "reload_delay", 1.5),
        (["--chdir", "/tmp"], "chdir", "/tmp"),
        (["-u", "nobody"], "user", "nobody"),
        (["--group", "0"], "group", "0"),
        (["-m", "0o22"], "umask", "0o22"),
        (["--forwarded-allow-ips", "*"], "forwarded_allow_ips", "*"),
        (["--ws", "websockets"], "ws", "websockets"),
        (["--ws", "wsproto"], "ws", "wsproto"),
        (["--ws", "websockets-sansio"], "ws", "websockets-sansio"),
        (["--use-colors"], "use_colors", True),
        (["--no-use-colors"], "use_colors", False),
        (["--http", "h11"], "http", "h11"),
        (["--http", "httptools"], "http", "httptools"),
        (["--http", "2"], "http", "2"),
        (["--h2-max-concurrent-streams", "7"], "h2_max_concurrent_streams", 7),
    ],
)
def test_other_servers_flags(runs: list[Any], args: list[str], name: str, expected: Any) -> None:
    result = invoke([*args, "m:a"])
    assert result.exit_code == 0, result.output
    assert getattr(runs[0][0], name) == expected


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-k", "uvicorn.workers.UvicornWorker"], "--worker-class"),
        (["--threads", "4"], "--workers"),
        (["--worker-connections", "1000"], "--limit-concurrency"),
        (["--daemon"], "systemd"),
        (["--http", "3"], "--http"),
        (["--interface", "asgi3"], "detected"),
        (["--h11-max-incomplete-event-size", "100"], "--limit-request-line"),
        (["--ssl-version", "2"], "TLS 1.2 and 1.3"),
        (["--suppress-ragged-eofs"], "close_notify"),
        (["--ssl-keyfile", "k.pem"], "--ssl-keyfile needs --ssl-certfile"),
        (["--ssl-keyfile-password", "x"], "needs --ssl-certfile"),
        (["--ssl-ciphers", "TLS_AES_128_GCM_SHA256"], "needs --ssl-certfile"),
        (["--cert-reqs", "1", "--certfile", "c.pem"], "--ssl-cert-reqs 1 needs --ssl-ca-certs"),
        (["--certfile", "c.pem", "--ssl-cert-reqs", "3"], "--ssl-cert-reqs must be at most 2"),
        (["--umask", "999"], "--umask"),
        (["--user", "no-such-user-here"], "no such user"),
        (["--group", "no-such-group-here"], "no such group"),
    ],
)
def test_flags_that_mean_nothing_here_say_what_to_use(
    runs: list[Any], args: list[str], needle: str
) -> None:
    result = CliRunner().invoke(cli, [*args, "m:a"])
    assert result.exit_code == 2
    assert needle in one_error_line(result)
    assert runs == []


# -- TLS settings


TLS_ARGS = {
    "ssl_certfile": "c.pem",
    "ssl_keyfile": "k.pem",
    "ssl_keyfile_password": "s3cret",
    "ssl_ca_certs": "ca.pem",
    "ssl_cert_reqs": 2,
    "ssl_ciphers": "TLS_AES_128_GCM_SHA256",
}


@pytest.mark.parametrize(
    "args",
    [
        [f"--{k.replace('_', '-')}={v}" for k, v in TLS_ARGS.items()],
        [
            *("--certfile", "c.pem", "--keyfile", "k.pem", "--ssl-keyfile-password", "s3cret"),
            *("--ca-certs", "ca.pem", "--cert-reqs", "2", "--ciphers", "TLS_AES_128_GCM_SHA256"),
        ],
    ],
)
def test_tls_flags_and_their_aliases(runs: list[Any], args: list[str]) -> None:
    result = invoke([*args, "m:a"])
    assert result.exit_code == 0, result.output
    config = runs[0][0]
    assert {k: getattr(config, k) for k in TLS_ARGS} == TLS_ARGS
    assert config.tls


def test_tls_from_the_environment_and_a_gunicorn_file(runs: list[Any], tmp_path: Path) -> None:
    env = {f"RUVICORN_{k.upper()}": str(v) for k, v in TLS_ARGS.items()}
    assert invoke(["m:a"], env).exit_code == 0
    (tmp_path / "g.py").write_text(
        "certfile = 'c.pem'\nkeyfile = 'k.pem'\nssl_keyfile_password = 's3cret'\n"
        "ca_certs = 'ca.pem'\ncert_reqs = 2\nciphers = 'TLS_AES_128_GCM_SHA256'\n"
    )
    assert invoke(["-c", "g.py", "m:a"]).exit_code == 0
    for config, _ in runs:
        assert {k: getattr(config, k) for k in TLS_ARGS} == TLS_ARGS
    assert not Config().tls


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("def ssl_context(config, default_ssl_context_factory):\n    pass\n", "ssl_* settings"),
        ("ssl_version = 2\n", "TLS 1.2 and 1.3"),
        ("do_handshake_on_connect = True\n", "drop --do-handshake-on-connect"),
        ("keyfile = 'k.pem'\n", "--ssl-keyfile needs --ssl-certfile"),
    ],
)
def test_tls_file_errors_are_one_line(
    runs: list[Any], tmp_path: Path, text: str, needle: str
) -> None:
    (tmp_path / "g.py").write_text(text)
    result = CliRunner().invoke(cli, ["-c", "g.py", "m:a"])
    assert result.exit_code == 2
    assert needle in one_error_line(result)
    assert runs == []


def test_the_key_password_is_never_shown(runs: list[Any]) -> None:
    args = ["--print-config", "--certfile", "c.pem", "--ssl-keyfile-password", "s3cret", "m:a"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "ssl_keyfile_password = (set, not shown)" in result.output
    assert "ssl_keyfile_password = (not set)" in invoke(["--print-config", "m:a"]).output
    config = Config(ssl_certfile="c.pem", ssl_keyfile_password="s3cret")
    assert "s3cret" not in repr(config) and "c.pem" in repr(config)


# -- values from Python (files and ruvicorn.run)


def test_coerce_accepts_field_flag_and_extra_names() -> None:
    typed = coerce.values(
        {
            "keep-alive": 3,
            "max_requests": "10",
            "errorlog": "-",
            "bind": "127.0.0.1:1",
            "accesslog": "a.log",
            "logconfig": "l.ini",
        },
        "t",
    )
    assert typed == {
        "timeout_keep_alive": 3.0,
        "limit_max_requests": 10,
        "log_file": "-",
        "bind": ("127.0.0.1:1",),
        "access_logfile": "a.log",
        "log_config": "l.ini",
    }


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"workers": True}, "workers must be a number"),
        ({"bind": [1]}, "a string or a list of strings"),
        ({"port": None}, "port must be set to a value"),
        ({"workers": 2, "w": 3}, "unknown setting 'w'"),
        ({"workers": 2, "-w": 3}, "unknown setting"),
        ({"keepalive": 2, "keep_alive": 3}, "set twice"),
        ({"port": 70000}, "--port must be at most 65535"),
    ],
)
def test_coerce_errors_name_the_source(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        coerce.values(raw, "where.toml")
    assert str(info.value).startswith("where.toml: ")
    assert needle in str(info.value)


def test_discover_returns_none_without_files(tmp_path: Path) -> None:
    assert configfile.discover(str(tmp_path)) is None


# -- --env-file


def test_env_file_syntax() -> None:
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "SPACED = padded  \n"
        "INLINE=kept # dropped\n"
        "HASH=a#b\n"
        "SINGLE='lit\\n $x # kept'\n"
        'DOUBLE="line\\nnext \\"q\\" # kept"\n'
        'MULTI="first\nsecond"\n'
        "EMPTY=\n"
        "URL=postgres://u:p@h/db?x=1\n"
    )
    assert envfile.parse(text, ".env") == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "INLINE": "kept",
        "HASH": "a#b",
        "SINGLE": "lit\\n $x # kept",
        "DOUBLE": 'line\nnext "q" # kept',
        "MULTI": "first\nsecond",
        "EMPTY": "",
        "URL": "postgres://u:p@h/db?x=1",
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("JUSTAKEY\n", ".env:1: expected KEY=VALUE"),
        ("OK=1\n1BAD=2\n", ".env:2: expected KEY=VALUE"),
        ('OPEN="never closed\n', '.env:1: OPEN: the " quote is never closed'),
        ("Q='a' trailing\n", ".env:1: Q: unexpected text"),
    ],
)
def test_env_file_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        envfile.parse(text, ".env")
    assert needle in str(info.value)


def test_env_file_does_not_override_the_environment(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=from-file\nB=from-file\n")
    env = {"A": "already"}
    assert envfile.load(str(path), env) == {"B": "from-file"}
    assert env == {"A": "already", "B": "from-file"}
    with pytest.raises(ConfigError, match="cannot read --env-file"):
        envfile.load(str(tmp_path / "missing"), env)
