"""CPU and memory of a process tree, and of the pinned cores, read from /proc."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from runner.paths import CLK_TCK


@dataclasses.dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    ticks: int  # utime + stime, all threads
    user: int  # utime alone (to tell the server's user time from other processes')
    start: int  # start time in ticks since boot: tells a reused pid apart


def read_proc(pid: int) -> Proc | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()  # fields[0] is field 3 (state)
    user = int(fields[11])
    return Proc(pid, int(fields[1]), user + int(fields[12]), user, int(fields[19]))


def process_tree(root: int) -> dict[int, Proc]:
    """The root and all its descendants, found by walking parent links in /proc."""
    procs: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (p := read_proc(int(entry))) is not None:
            procs[p.pid] = p
    if root not in procs:
        return {}
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    tree: dict[int, Proc] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        tree[pid] = procs[pid]
        todo.extend(children.get(pid, ()))
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(before: dict[int, Proc], after: dict[int, Proc]) -> float:
    """CPU the tree used between two snapshots (a process born in between counts whole)."""
    ticks = 0
    for pid, p in after.items():
        old = before.get(pid)
        ticks += p.ticks - (old.ticks if old is not None and old.start == p.start else 0)
    return ticks / CLK_TCK


def parse_cpus(spec: str) -> set[int]:
    """A taskset CPU list ("0", "0,2", "0-3") as a set."""
    cpus: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def core_ticks(cpus: set[int]) -> tuple[int, int, int]:
    """(user+nice, steal, all) ticks of these CPUs from /proc/stat."""
    usernice = steal = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            v = [int(x) for x in vals[:8]]
            usernice += v[0] + v[1]
            steal += v[7]
            total += sum(v)
    return usernice, steal, total


def other_load(core0: tuple[int, int, int], core1: tuple[int, int, int], server_user: int) -> float:
    """Share of the server's core that other processes (and the hypervisor) took meanwhile.

    User time on that core not spent by the server, plus steal. High values mean the row
    was measured while something else competed for the core: rerun it, or read it with care.
    """
    total = core1[2] - core0[2]
    if total <= 0:
        return 0.0
    other = (core1[0] - core0[0]) - server_user + (core1[1] - core0[1])
    return max(0.0, other / total)


def worker_pids(tree: dict[int, Proc], root: int) -> list[int]:
    """The processes that serve requests: the root's descendants if any, else the root."""
    others = [pid for pid in tree if pid != root]
    return others or [root]
