"""The benchmarks still run: the `--quick` runs of `bench/engine_overhead.py`, `llm_overhead.py`,
`chat.py`, `knowledge.py` and `bodies.py` end well and print their tables. No timing is
asserted; the figures are for people to read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "engine_overhead.py"
LLM_BENCH = BENCH.with_name("llm_overhead.py")


def run_quick(bench: Path) -> str:
    """The benchmark's ``--quick`` output; it must end well."""
    finished = subprocess.run(
        [sys.executable, str(bench), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=BENCH.parents[1],
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_engine_overhead_benchmark_runs_quick() -> None:
    out = run_quick(BENCH)
    assert "workload" in out
    assert "baseline" in out
    for workload in ("chain-40", "chain-1000", "fan-1000"):
        assert workload in out
    assert "validate (cold caches)" in out
    assert "decode" in out


def test_llm_overhead_benchmark_runs_quick(embedded_model: Path) -> None:
    out = run_quick(LLM_BENCH)
    assert "node / raw tokens/s:" in out
    assert "node - raw first token:" in out


def test_chat_benchmark_runs_quick(embedded_model: Path) -> None:
    out = run_quick(BENCH.with_name("chat.py"))
    assert "history of 1,000 messages" in out
    assert "history 1,000 / 10" in out
    assert "v1 / node tokens/s:" in out
    assert "v1 - node first token:" in out


def test_knowledge_benchmark_runs_quick() -> None:
    out = run_quick(BENCH.with_name("knowledge.py"))
    assert "keyword recall@5" in out
    assert "bm25s (same chunks)" in out
    assert "query p50: keyword" in out


def test_bodies_benchmark_runs_quick() -> None:
    out = run_quick(BENCH.with_name("bodies.py"))
    assert "per inner node" in out
    assert "nodes executed [6]" in out  # the changed item's 3 inner nodes, the map, its output
    assert "iterations executed [7, 8, 9, 10]" in out
