"""The benchmarks still run: `bench/engine_overhead.py --quick` and `bench/llm_overhead.py --quick`
end well and print their tables. No timing is asserted; the figures are for people to read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "engine_overhead.py"
LLM_BENCH = BENCH.with_name("llm_overhead.py")


def test_engine_overhead_benchmark_runs_quick() -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=BENCH.parents[1],
    )
    assert finished.returncode == 0, finished.stderr
    out = finished.stdout
    assert "workload" in out
    assert "baseline" in out
    for workload in ("chain-40", "chain-1000", "fan-1000"):
        assert workload in out
    assert "validate (cold caches)" in out
    assert "decode" in out


def test_llm_overhead_benchmark_runs_quick(embedded_model: Path) -> None:
    finished = subprocess.run(
        [sys.executable, str(LLM_BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=BENCH.parents[1],
    )
    assert finished.returncode == 0, finished.stderr
    assert "node / raw tokens/s:" in finished.stdout
    assert "node - raw first token:" in finished.stdout
