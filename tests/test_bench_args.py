"""bench/run.py: only a full run replaces the committed bench/results/; a quick or partial run
writes elsewhere unless told where."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def out(bench: ModuleType, *argv: str) -> Path:
    return Path(bench.output_dir(bench.parse_args(list(argv)))).resolve()


def test_full_run_writes_the_committed_results(bench: ModuleType) -> None:
    assert out(bench) == (BENCH / "results").resolve()
    assert out(bench, "--retry-noisy", "0", "--no-setup") == (BENCH / "results").resolve()
    assert out(bench, "--report-only") == (BENCH / "results").resolve()


@pytest.mark.parametrize(
    "argv",
    [
        ["--quick"],
        ["--workloads", "plaintext"],
        ["--servers", "ruvicorn"],
        ["--rounds", "1"],
        ["--duration", "2"],
        ["--warmup", "0"],
    ],
)
def test_quick_or_partial_run_keeps_off_the_committed_results(
    bench: ModuleType, argv: list[str]
) -> None:
    assert out(bench, *argv) == (BENCH / "results-partial").resolve()


def test_out_is_obeyed(bench: ModuleType, tmp_path: Path) -> None:
    assert out(bench, "--quick", "--out", str(tmp_path)) == tmp_path.resolve()
    assert out(bench, "--output", str(tmp_path / "x")) == (tmp_path / "x").resolve()
