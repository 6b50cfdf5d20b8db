"""Check the declared minimum Rust version (``rust-version``) without that toolchain.

Building with ``cargo +1.85`` would be the real proof, but that toolchain is not installed
here and cannot be fetched offline. What can be checked with the one toolchain there is:

- every crate (the workspace's and bench/wsload) declares the same ``rust-version``;
- no dependency needed to *build* them declares a higher one (``cargo metadata`` over the
  lock file). Dev-dependencies only run the tests, so exceeding ones are listed, not fatal;
- std APIs newer than it are caught by clippy's ``incompatible_msrv`` lint, which reads
  ``rust-version`` from Cargo.toml (so no clippy.toml repeats the number) and which
  ``make lint`` runs with ``-D warnings``.

Language features newer than the declared version are the gap none of these closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = [ROOT / "Cargo.toml", ROOT / "bench" / "wsload" / "Cargo.toml"]


def version(text: str) -> tuple[int, int, int]:
    """``1.85`` and ``1.85.0`` alike, as a comparable triple."""
    major, minor, patch = (*(int(part) for part in text.split(".")), 0, 0)[:3]
    return major, minor, patch


def metadata(manifest: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "cargo",
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"check_msrv: cargo metadata failed for {manifest}: {out.stderr.strip()}")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def build_closure(meta: dict[str, Any]) -> set[str]:
    """Package ids reachable from the workspace members through normal and build deps."""
    nodes = {node["id"]: node for node in meta["resolve"]["nodes"]}
    seen: set[str] = set()
    todo = list(meta["workspace_members"])
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    return seen


def check(manifest: Path, declared: dict[str, str]) -> list[str]:
    """Problems of one cargo project; ``declared`` collects each member's rust-version."""
    meta = metadata(manifest)
    packages = {p["id"]: p for p in meta["packages"]}
    for pid in meta["workspace_members"]:
        declared[packages[pid]["name"]] = packages[pid].get("rust_version") or "none"
    msrv = min((v for v in declared.values() if v != "none"), key=version, default="0")
    needed = build_closure(meta)
    problems = []
    for pid, pkg in packages.items():
        wants = pkg.get("rust_version")
        if not wants or version(wants) <= version(msrv):
            continue
        line = f"{pkg['name']} {pkg['version']} needs Rust {wants} (declared: {msrv})"
        if pid in needed:
            problems.append(line)
        else:
            print(f"check_msrv: note: dev-dependency {line}: tests need the newer toolchain")
    return problems


def main() -> int:
    declared: dict[str, str] = {}
    problems = [line for manifest in MANIFESTS for line in check(manifest, declared)]
    if len(set(declared.values())) != 1:
        problems.append(f"crates declare different rust-version values: {declared}")
    for line in problems:
        print(f"check_msrv: {line}", file=sys.stderr)
    if not problems:
        versions = ", ".join(sorted(declared))
        print(f"check_msrv: {versions}: rust-version {next(iter(declared.values()))} holds")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
