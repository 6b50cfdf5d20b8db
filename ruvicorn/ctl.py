"""``ruvicorn ctl PATH COMMAND``: ask a running master through its --control-socket."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import click

from ruvicorn import exitcodes, logs

#: Seconds the command waits for the master's answer.
TIMEOUT = 10.0
#: Exit code when the master could not be reached or refused the command.
FAILED = 1


def ask(path: str, command: str, args: list[Any] | None = None) -> dict[str, Any]:
    """Send one request and return the master's answer; OSError/ValueError when unreachable."""
    request = json.dumps({"command": command, "args": args or []}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        sock.sendall(request)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError("not an answer")
    return answer


def _call(path: str, command: str, args: list[Any] | None = None) -> dict[str, Any]:
    try:
        answer = ask(path, command, args)
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise click.ClickException(f"{path}: no answer from a ruvicorn master ({detail})") from None
    if not answer.get("ok"):
        raise click.ClickException(str(answer.get("message", "refused")))
    return answer


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / (1024 * 1024):.0f} MiB"


def render(status: dict[str, Any]) -> str:
    """``ctl status`` for a person."""
    lines = [
        f"master {status['master']}: {status['state']}, "
        f"{logs.plural(int(status['target']), 'worker')} wanted",
    ]
    if status.get("zygote"):
        lines.append(f"zygote {status['zygote']}")
    last = status.get("last_reload")
    if last:
        ago = time.time() - float(last["at"])
        lines.append(f"last reload: {ago:.0f} s ago ({last['reason']})")
    lines.append(f"{'PID':>8}  {'STATE':<9} {'AGE':>9} {'RSS':>9} {'REQUESTS':>9}")
    for w in status["workers"]:
        requests = "-" if w["requests"] is None else str(w["requests"])
        lines.append(
            f"{w['pid']:>8}  {w['state']:<9} {w['age']:>8.0f}s {_mib(w['rss']):>9} {requests:>9}"
        )
    return "\n".join(lines)


@click.group(name="ruvicorn ctl", context_settings={"help_option_names": ["-h", "--help"]})
def ctl() -> None:
    """Ask the ruvicorn master listening on a --control-socket."""


@ctl.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(path: str, as_json: bool) -> None:
    """Workers, pids, age, RSS, state and the last reload."""
    answer = _call(path, "status")
    answer.pop("ok", None)
    click.echo(json.dumps(answer, indent=2) if as_json else render(answer))


@ctl.command()
@click.argument("path")
def reload(path: str) -> None:
    """Replace every worker with one running the code on disk (as SIGHUP)."""
    click.echo(_call(path, "reload")["message"])


@ctl.command()
@click.argument("path")
@click.argument("count", type=int)
def scale(path: str, count: int) -> None:
    """Run COUNT workers."""
    click.echo(_call(path, "scale", [count])["message"])


@ctl.command()
@click.argument("path")
@click.option("--fast", is_flag=True, help="Do not wait for requests to finish (as SIGQUIT).")
def stop(path: str, fast: bool) -> None:
    """Stop the server gracefully (as SIGTERM)."""
    click.echo(_call(path, "stop", ["--fast"] if fast else [])["message"])


@ctl.command(name="reopen-logs")
@click.argument("path")
def reopen_logs(path: str) -> None:
    """Reopen the log files after rotation (as SIGUSR1)."""
    click.echo(_call(path, "reopen-logs")["message"])


def main(argv: list[str]) -> None:
    """``ruvicorn ctl`` with ``argv`` (PATH COMMAND ...), as the user wrote it."""
    # The user writes PATH before the command; click's groups want the command first.
    if len(argv) >= 2 and not argv[0].startswith("-"):
        argv = [argv[1], argv[0], *argv[2:]]
    ctl.main(argv, prog_name="ruvicorn ctl", standalone_mode=True)
    raise SystemExit(exitcodes.OK)
