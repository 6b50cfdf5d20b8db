"""The command line: flags, the bench venv bootstrap, the plan of what to measure."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from runner.measure import Options
from runner.paths import BENCH, HOST, OUT, PARTIAL_RESULTS, RESULTS, VENV
from runner.probes import port_free
from runner.servers import MEMORY_SERVERS, QUICK_SERVERS, SERVERS, Server
from runner.session import Plan, Session, measure_all, report_only, run_meta
from runner.tls import CERTS, CertError
from runner.workloads import MEMORY, WORKLOADS


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark ruvicorn against its peers; a full run writes bench/results/, "
        "a quick or partial one bench/results-partial/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_selection_args(p)
    add_run_args(p)
    return p.parse_args(argv)


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """What is measured, and for how long."""
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 rounds x 3 s, 1 s warm-up; every server on plaintext, "
        f"{', '.join(QUICK_SERVERS)} on the other workloads",
    )
    p.add_argument("--duration", type=int, help="seconds measured per run (default 7, quick 3)")
    p.add_argument(
        "--warmup", type=int, help="seconds of discarded load first (default 2, quick 1)"
    )
    p.add_argument("--rounds", type=int, help="rounds per server (default 3, quick 2)")
    p.add_argument(
        "--workloads",
        default="default",
        help="comma list of "
        + ", ".join([*WORKLOADS, MEMORY])
        + "; 'default' = all but memory, 'all' = all",
    )
    p.add_argument(
        "--servers",
        default="default",
        help="comma list of " + ", ".join(SERVERS) + "; 'default' = all",
    )


def add_run_args(p: argparse.ArgumentParser) -> None:
    """How the run is pinned, bounded and where it writes."""
    p.add_argument("--port", type=int, default=18080, help="loopback port the servers listen on")
    p.add_argument("--server-cpu", default="0", help="CPU list for the server (taskset -c)")
    p.add_argument("--client-cpu", default="1", help="CPU list for wrk (taskset -c)")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=30.0,
        help="seconds a server has to answer its first request",
    )
    p.add_argument("--memory-duration", type=int, default=60, help="seconds of the memory soak")
    p.add_argument("--memory-interval", type=int, default=5, help="seconds between RSS samples")
    p.add_argument(
        "--no-setup",
        action="store_true",
        help="do not run bench/setup.sh first (the venv must exist)",
    )
    p.add_argument(
        "--out",
        "--output",
        dest="output",
        type=Path,
        default=None,
        help="results directory (default: bench/results for a full run or --report-only, "
        "bench/results-partial otherwise)",
    )
    p.add_argument(
        "--retry-noisy",
        type=float,
        default=20.0,
        metavar="PCT",
        help="measure a round again (once; at most 15%% more runs in all) when other processes "
        "took more than PCT%% of the server's or wrk's core; 0 = never",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite RESULTS.md and ratios.png from results.json",
    )


def is_partial(args: argparse.Namespace) -> bool:
    """Whether the run measures less (or otherwise) than the full default run."""
    return bool(
        args.quick
        or args.workloads != "default"
        or args.servers != "default"
        or args.duration is not None
        or args.warmup is not None
        or args.rounds is not None
    )


def run_mode(args: argparse.Namespace) -> str:
    return "quick" if args.quick else "partial" if is_partial(args) else "full"


def output_dir(args: argparse.Namespace) -> Path:
    """``--out``, else the committed results for a full run, else the partial directory."""
    if args.output is not None:
        return Path(args.output)
    return PARTIAL_RESULTS if is_partial(args) and not args.report_only else RESULTS


def bootstrap(args: argparse.Namespace) -> None:
    """Run setup.sh, then re-run this script with the bench venv's Python."""
    if os.environ.get("BENCH_IN_VENV") == "1":
        return
    if not args.no_setup:
        code = subprocess.call(["bash", str(BENCH / "setup.sh")])
        if code != 0:
            sys.exit(f"bench: bench/setup.sh failed (code {code})")
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"bench: {VENV} is missing: run bash bench/setup.sh")
    os.environ["BENCH_IN_VENV"] = "1"
    os.execv(str(python), [str(python), str(BENCH / "run.py"), *sys.argv[1:]])


def select(spec: str, known: list[str], default: list[str], kind: str) -> list[str]:
    if spec == "default":
        return default
    if spec == "all":
        return known
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        sys.exit(f"bench: unknown {kind} {', '.join(bad)} (known: {', '.join(known)})")
    return names


def plan(args: argparse.Namespace) -> Plan:
    """Per workload: the servers to measure, and those selected that it does not apply to
    for a stated reason (reported as n/a rows)."""
    workloads = select(args.workloads, [*WORKLOADS, MEMORY], list(WORKLOADS), "workload")
    explicit = args.servers != "default"
    servers = select(args.servers, list(SERVERS), list(SERVERS), "server")
    out = []
    for wname in workloads:
        if wname == MEMORY:
            continue
        w = WORKLOADS[wname]
        chosen = [SERVERS[s] for s in servers if SERVERS[s].applies(w)]
        na = [SERVERS[s] for s in servers if SERVERS[s].na_reason(w) is not None]
        if args.quick and not explicit and wname != "plaintext":
            chosen = [s for s in chosen if s.name in QUICK_SERVERS]
            na = []
        if chosen:
            out.append((w, chosen, na))
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def options(args: argparse.Namespace) -> Options:
    return Options(
        duration=args.duration or (3 if args.quick else 7),
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        rounds=args.rounds or (2 if args.quick else 3),
        port=args.port,
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        start_timeout=args.start_timeout,
        memory_duration=args.memory_duration,
        memory_interval=args.memory_interval,
        retry_noisy=args.retry_noisy,
    )


def preflight(opt: Options) -> None:
    """Exit with one line when the machine cannot run the bench."""
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk, or run bench/setup.sh)")
    if shutil.which("taskset") is None:
        sys.exit("bench: taskset is not installed (apt-get install util-linux)")
    if not port_free(opt.port):
        sys.exit(f"bench: port {opt.port} on {HOST} is in use: pick another with --port")


def memory_servers(args: argparse.Namespace) -> list[Server]:
    """The servers of the memory soak, when it was asked for."""
    if MEMORY not in select(args.workloads, [*WORKLOADS, MEMORY], list(WORKLOADS), "workload"):
        return []
    names = (
        select(args.servers, list(SERVERS), list(SERVERS), "server")
        if args.servers not in ("default", "all")
        else list(MEMORY_SERVERS)
    )
    return [SERVERS[n] for n in names]


def announce(runs: int, mem_servers: list[Server], opt: Options) -> None:
    estimate = runs * (opt.duration + opt.warmup + 1.5) + len(mem_servers) * (
        opt.memory_duration + 3
    )
    print(
        f"bench: {runs} runs of {opt.duration} s (+{opt.warmup} s warm-up)"
        f"{f' and {len(mem_servers)} memory soaks' if mem_servers else ''}, "
        f"about {estimate / 60:.0f} min",
        flush=True,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bootstrap(args)
    # Ctrl-C, or a TERM from a timeout wrapper: stop the current server, write what we have.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    OUT.results = output_dir(args).resolve()
    OUT.raw.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return report_only()
    for old in OUT.raw.glob("*.log"):  # logs of an earlier run would be mistaken for this one's
        old.unlink()
    opt = options(args)
    preflight(opt)
    work, mem_servers = plan(args), memory_servers(args)
    if any(w.tls for w, _, _ in work):
        try:
            CERTS.mint()
        except CertError as exc:
            sys.exit(f"bench: no certificates for the TLS workloads: {exc}")
    announce(sum(len(servers) for _, servers, _ in work) * opt.rounds, mem_servers, opt)
    session = Session(work, mem_servers, opt, run_meta(run_mode(args), argv, opt))
    try:
        return measure_all(session)
    finally:
        CERTS.remove()
