"""Rerun and persistence costs, with storage on, on SQLite and on a real PostgreSQL.

    .venv/bin/python bench/reruns.py            # both databases (PostgreSQL needs initdb/pg_ctl)
    .venv/bin/python bench/reruns.py --quick    # fewer repetitions
    .venv/bin/python bench/reruns.py --sqlite-only

1. Rerun of a 1,000-node workflow (10 parallel chains of 100 trivial nodes) after changing one
   param of one leaf node: wall time, nodes executed, ratio to the full run's wall time.
2. Persistence overhead: 40- and 1,000-node sequential chains of trivial nodes, run through the
   run service (every node result committed before the next node starts) against the same chain
   run in memory by the bare executor; ms per node for both and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.document import Workflow, from_builtins
from engine.executor import Execution
from engine.runs import RunService
from engine.storage.database import Database
from nodes.base import NodeContext, NodeType, Port
from nodes.registry import NodeRegistry


class Step(NodeType):
    """A trivial node: passes its input on, tagged."""

    type = "step"
    title = "Step"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"tag": {"type": "integer"}},
    }
    inputs = (Port("x", required=False, default=0),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"y": inputs.get("x", 0) + self.params.get("tag", 0)}


def registry() -> NodeRegistry:
    built = NodeRegistry.builtin()
    built.register(Step)
    return built


def chains(count: int, length: int) -> Workflow:
    nodes = [
        {"id": f"c{c}_{i}", "type": "step", "params": {"tag": 1}}
        for c in range(count)
        for i in range(length)
    ]
    edges = [
        {"from": f"c{c}_{i}.y", "to": f"c{c}_{i + 1}.x"}
        for c in range(count)
        for i in range(length - 1)
    ]
    return from_builtins(
        {"schema_version": 1, "name": f"{count}x{length}", "nodes": nodes, "edges": edges}
    )


async def rerun_figures(service: RunService, repeats: int) -> dict[str, float]:
    workflow = chains(10, 100)
    full_times, rerun_times, executed = [], [], set()
    for repeat in range(repeats):
        started = time.perf_counter()
        parent = await service.execute(workflow)
        full_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        child = await (await service.rerun(parent.id, params={"c3_99": {"tag": 2 + repeat}})).wait()
        rerun_times.append(time.perf_counter() - started)
        assert child.status == "succeeded", child.error
        executed.add(sum(1 for state in child.nodes.values() if state.status == "succeeded"))
    full, rerun = statistics.median(full_times), statistics.median(rerun_times)
    assert len(executed) == 1
    return {"full_s": full, "rerun_s": rerun, "executed": executed.pop(), "ratio": rerun / full}


async def in_memory_ms_per_node(workflow: Workflow, repeats: int) -> float:
    plan = RunService.__new__(RunService)  # only for `plan`, which needs the registry
    plan.registry, plan.check_context = registry(), None  # type: ignore[assignment]
    compiled = RunService.plan(plan, workflow)
    times = []
    for repeat in range(repeats):
        started = time.perf_counter()
        await Execution(compiled, {}, run_id=f"mem{repeat}").execute()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / len(workflow.nodes)


async def persistence_figures(service: RunService, repeats: int) -> list[tuple[int, float, float]]:
    rows = []
    for length in (40, 1000):
        workflow = chains(1, length)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            record = await service.execute(workflow)
            times.append(time.perf_counter() - started)
            assert record.status == "succeeded"
        stored = statistics.median(times) * 1000 / length
        rows.append((length, stored, await in_memory_ms_per_node(workflow, repeats)))
    return rows


async def measure(label: str, url: str, repeats: int) -> None:
    database = await Database.connect(url)
    service = RunService(database, registry())
    try:
        await service.execute(chains(1, 40))  # warm up: connections, statements
        figures = await rerun_figures(service, repeats)
        print(f"\n{label}: rerun after changing one leaf of a 1,000-node workflow")
        print(
            f"  full run {figures['full_s'] * 1000:8.1f} ms"
            f"   rerun {figures['rerun_s'] * 1000:7.1f} ms"
            f"   executed {figures['executed']} node(s)   rerun/full {figures['ratio']:.1%}"
            f"   (target: 1 node, <= 5%)"
        )
        print(
            f"{label}: persistence per node on sequential chains (target: SQLite <= 1 ms, "
            "PostgreSQL <= 3 ms, flat)"
        )
        for length, stored, memory in await persistence_figures(service, repeats):
            print(
                f"  {length:5d} nodes: stored {stored:6.3f} ms/node"
                f"   in memory {memory:6.3f} ms/node"
                f"   persistence {stored - memory:6.3f} ms/node"
            )
    finally:
        await service.close()
        await database.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--sqlite-only", action="store_true")
    options = parser.parse_args()
    repeats = 2 if options.quick else 5
    with tempfile.TemporaryDirectory() as folder:
        await measure("SQLite", f"sqlite+aiosqlite:///{folder}/bench.db", repeats)
    if not options.sqlite_only:
        from tests.support import postgres  # noqa: PLC0415

        with postgres.cluster(durable=True) as cluster:
            await measure("PostgreSQL", cluster.create_database(), repeats)


if __name__ == "__main__":
    asyncio.run(main())
