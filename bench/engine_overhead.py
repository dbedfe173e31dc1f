"""Engine overhead: what the executor costs per node, and what validating a big document costs.

    .venv/bin/python bench/engine_overhead.py            # full run (under a minute)
    .venv/bin/python bench/engine_overhead.py --quick    # few repetitions (the smoke test)
    .venv/bin/python bench/engine_overhead.py --profile chain-1000   # cProfile one workload

Executor workloads are trivial nodes (each passes its value through), run in memory by
`engine.execution.executor.Execution` with no listeners and no store, so what is measured is the
engine alone. The baseline is the same graph as bare asyncio tasks ordered by
`graphlib.TopologicalSorter`, measured in the same process, alternating with nodeloom, so the
ratio holds on any machine.
The documents are compiled once; only execution (including building the `Execution`) is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

import msgspec
from overhead_workloads import (
    WORKLOADS,
    JoinNode,
    PassthroughNode,
    SourceNode,
    Workload,
    bench_registry,
    validation_document,
)

from engine.documents.document import decode_workflow, from_builtins
from engine.documents.graph import compile_plan, validate
from engine.documents.plan import Plan
from engine.execution.executor import Execution
from engine.execution.start import RunStart
from engine.nodes.registry import NodeRegistry
from nodes import jinja

TARGET_US_PER_NODE = 15.0
TARGET_RATIO = 4.0
TARGET_VALIDATION_S = 0.5


# -- the two runners ------------------------------------------------------------------------------


async def calibrate(count: int = 5000) -> tuple[float, float]:
    """This machine's asyncio speed (µs): one event-loop pass, and create_task + await of a
    coroutine that does nothing. Absolute figures below scale with these."""

    async def nothing() -> None:
        return None

    started = time.perf_counter()
    for _ in range(count):
        await asyncio.sleep(0)
    loop_pass = (time.perf_counter() - started) / count * 1e6
    started = time.perf_counter()
    for _ in range(count):
        await asyncio.create_task(nothing())
    return loop_pass, (time.perf_counter() - started) / count * 1e6


async def run_nodeloom(plan: Plan) -> Any:
    return await Execution(RunStart(id="bench", plan=plan, inputs={})).execute()


_WORK: dict[str, Callable[[list[Any]], Any]] = {
    SourceNode.type: lambda values: 1,
    PassthroughNode.type: lambda values: values[0],
    JoinNode.type: lambda values: values,
}


async def run_baseline(workload: Workload) -> dict[str, Any]:
    """The same graph as bare asyncio tasks: the standard prepare/get_ready/done loop, each task
    reporting its node done through a queue."""
    results: dict[str, Any] = {}
    predecessors, kinds = workload.predecessors, workload.kinds
    finished: asyncio.Queue[str] = asyncio.Queue()
    running: set[asyncio.Task[None]] = set()

    async def run_node(node_id: str) -> None:
        values = [results[source] for source in predecessors[node_id]]
        results[node_id] = _WORK[kinds[node_id]](values)
        finished.put_nowait(node_id)

    sorter = TopologicalSorter(predecessors)
    sorter.prepare()
    while sorter.is_active():
        for node_id in sorter.get_ready():
            task = asyncio.create_task(run_node(node_id))
            running.add(task)
            task.add_done_callback(running.discard)
        sorter.done(await finished.get())
    return results


def check_results(workload: Workload, plan: Plan) -> None:
    """Both runners compute the right thing (outside the timed region)."""
    result = asyncio.run(run_nodeloom(plan))
    output = result.nodes[workload.last].output
    if result.status != "succeeded" or output is None or output["y"] != workload.expected:
        raise SystemExit(f"{workload.name}: nodeloom run went wrong: {result.error}")
    if asyncio.run(run_baseline(workload))[workload.last] != workload.expected:
        raise SystemExit(f"{workload.name}: baseline run went wrong")


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: list[float]
    per: int  # what the seconds are divided by (nodes)

    @property
    def median_us(self) -> float:
        return statistics.median(self.seconds) / self.per * 1e6

    @property
    def min_us(self) -> float:
        return min(self.seconds) / self.per * 1e6


async def _timed(make: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await make()
    return time.perf_counter() - started


async def time_workload(
    workload: Workload, plan: Plan, reps: int, warmup: int
) -> tuple[Timing, Timing]:
    """Alternate nodeloom and baseline runs in one event loop, so drift hits both alike.

    The collector stays on (its young-generation passes are part of the cost of allocating),
    but what exists beforehand is frozen out of its way and nothing is collected between runs
    (a full collection before each run would leave the CPU caches cold)."""
    gc.collect()
    gc.freeze()
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(warmup + reps):
        first = await _timed(lambda: run_nodeloom(plan))
        second = await _timed(lambda: run_baseline(workload))
        if rep >= warmup:
            ours.append(first)
            theirs.append(second)
    gc.unfreeze()
    return Timing(ours, workload.size), Timing(theirs, workload.size)


def _clear_template_caches() -> None:
    """Validation of a freshly received document starts with cold template caches."""
    for value in vars(jinja).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


def time_validation(registry: NodeRegistry, reps: int) -> dict[str, Any]:
    data = msgspec.json.encode(validation_document())
    workflow = decode_workflow(data)
    if issues := validate(workflow, registry):
        raise SystemExit(f"validation document is invalid: {issues[0].describe()}")
    figures: dict[str, Any] = {
        "nodes": len(workflow.nodes),
        "edges": len(workflow.edges),
        "bytes": len(data),
        "decode": [],
        "validate": [],
        "revalidate": [],
    }
    for _ in range(reps):
        gc.collect()
        started = time.perf_counter()
        decode_workflow(data)
        figures["decode"].append(time.perf_counter() - started)
        _clear_template_caches()
        for key in ("validate", "revalidate"):  # cold caches, then as the first pass left them
            gc.collect()
            started = time.perf_counter()
            validate(workflow, registry)
            figures[key].append(time.perf_counter() - started)
    return figures


# -- report ---------------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def print_executor_table(rows: list[tuple[Workload, Timing, Timing]]) -> None:
    print(
        f"executor overhead, µs per node (median / min); targets: ≤ {TARGET_US_PER_NODE:g} µs "
        f"per node and ≤ {TARGET_RATIO:g}x baseline"
    )
    header = (
        f"{'workload':<12}{'nodes':>6}  {'nodeloom':>15}  {'baseline':>15}  {'ratio':>6}  "
        f"{f'≤{TARGET_US_PER_NODE:g}µs':>5}  {f'≤{TARGET_RATIO:g}x':>4}"
    )
    print(header)
    print("-" * len(header))
    for workload, ours, theirs in rows:
        ratio = ours.median_us / theirs.median_us
        fast, close = ours.median_us <= TARGET_US_PER_NODE, ratio <= TARGET_RATIO
        print(
            f"{workload.name:<12}{workload.size:>6}  "
            f"{ours.median_us:>7.2f} / {ours.min_us:>5.2f}  "
            f"{theirs.median_us:>7.2f} / {theirs.min_us:>5.2f}  {ratio:>5.2f}x  "
            f"{_mark(fast):>5}  {_mark(close):>4}"
        )


def print_validation_table(figures: dict[str, Any]) -> None:
    print()
    print(
        f"big document: {figures['nodes']:,} nodes, {figures['edges']:,} edges, "
        f"{figures['bytes']:,} bytes of JSON; seconds (median / min)"
    )
    rows = (
        ("decode (bytes → Workflow)", "decode", None),
        ("validate (cold caches)", "validate", TARGET_VALIDATION_S),
        ("validate again (warm)", "revalidate", TARGET_VALIDATION_S),
    )
    for label, key, target in rows:
        seconds = figures[key]
        median = statistics.median(seconds)
        goal = f"  target ≤ {target:g} s  {_mark(median <= target)}" if target else ""
        print(f"{label:<27}{median:>7.3f} / {min(seconds):.3f}{goal}")


def profile(name: str, registry: NodeRegistry, reps: int) -> None:
    """cProfile repeated runs of one workload (or ``validation``); prints the top functions."""
    profiler = cProfile.Profile()
    if name == "validation":
        workflow = decode_workflow(msgspec.json.encode(validation_document()))
        for _ in range(reps):
            _clear_template_caches()
            profiler.runcall(validate, workflow, registry)
    else:
        workload = WORKLOADS[name]()
        plan = compile_plan(from_builtins(workload.document), registry)

        async def repeat() -> None:
            for _ in range(reps):
                await run_nodeloom(plan)

        profiler.runcall(asyncio.run, repeat())
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument(
        "--profile",
        choices=[*WORKLOADS, "validation"],
        help="cProfile one workload instead of benchmarking",
    )
    args = parser.parse_args(argv)
    registry = bench_registry()
    if args.profile:
        profile(args.profile, registry, reps=3 if args.profile == "validation" else 20)
        return 0

    small_reps, big_reps, validation_reps = (10, 2, 1) if args.quick else (400, 60, 5)
    rows: list[tuple[Workload, Timing, Timing]] = []
    for make in WORKLOADS.values():
        workload = make()
        plan = compile_plan(from_builtins(workload.document), registry)
        check_results(workload, plan)
        reps = small_reps if workload.size < 100 else big_reps
        ours, theirs = asyncio.run(time_workload(workload, plan, reps, warmup=max(1, reps // 10)))
        rows.append((workload, ours, theirs))
    loop_pass, task_cost = asyncio.run(calibrate(500 if args.quick else 5000))
    print(
        f"nodeloom engine overhead (python {sys.version.split()[0]}"
        f"{', quick' if args.quick else ''})\nthis machine: one event-loop pass "
        f"{loop_pass:.1f} µs, create_task + await of an empty coroutine {task_cost:.1f} µs"
    )
    print()
    print_executor_table(rows)
    figures = time_validation(registry, validation_reps)
    print_validation_table(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
