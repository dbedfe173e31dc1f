"""Rerun and persistence costs, with storage on, on SQLite and on a real PostgreSQL.

    .venv/bin/python bench/reruns.py            # both databases (PostgreSQL needs initdb/pg_ctl)
    .venv/bin/python bench/reruns.py --quick    # fewer repetitions
    .venv/bin/python bench/reruns.py --sqlite-only

1. Rerun of a 1,000-node workflow (10 parallel chains of 100 nodes) after changing one param of
   one leaf node: wall time, nodes executed, ratio to the full run's wall time. Measured with
   trivial nodes (the full run is then nothing but overhead: the worst case for the ratio), with
   nodes that wait 1 ms (a local lookup, say) and with nodes that wait 10 ms (I/O-bound work,
   about the cheapest a tool or model call gets). Each rerun is timed with the parent in the
   service's memory of recent runs, in a new service (as `nodeloom rerun` or a restarted server
   finds it: only in the database; timed as `nodeloom rerun` goes, from reading the plan it shows
   to the child's end) and after 10 other runs pushed it out of memory; the same
   for a 40-node chain, whose rerun should cost no more than its full run. A run's time ends
   with its end stored; what is stored after it (what a rerun of it may take over) is timed
   on its own, and every rerun starts once that is stored, as a rerun asked for later finds
   it.
2. Persistence: 40- and 1,000-node sequential chains of trivial nodes run through the run service
   (every result committed, every event stored) against the same chain run in memory by the bare
   executor; ms per node for both, and the difference.

Figures are medians over the repetitions. The run service logs as the server does (JSON lines at
info), to a temporary file.
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

from engine.documents.document import Workflow, from_builtins
from engine.documents.graph import compile_plan
from engine.execution.executor import Execution
from engine.execution.start import RunStart
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeContext, NodeType, Port
from engine.runs.service import RunService
from engine.storage.database import Database
from nodes import builtin_node_types
from server.logs import configure_logging

WAITS = (0.0, 0.001, 0.010)


class Step(NodeType):
    """Passes its input on, plus ``tag``, after waiting ``wait_s``."""

    type = "step"
    title = "Step"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"tag": {"type": "integer"}, "wait_s": {"type": "number"}},
    }
    inputs = (Port("x", required=False, default=0),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        if wait := self.params.get("wait_s"):
            await asyncio.sleep(wait)
        return {"y": inputs.get("x", 0) + self.params.get("tag", 0)}


def registry() -> NodeRegistry:
    built = NodeRegistry(builtin_node_types())
    built.register(Step)
    return built


def chains(count: int, length: int, wait_s: float = 0.0) -> Workflow:
    params: dict[str, Any] = {"tag": 1, "wait_s": wait_s} if wait_s else {"tag": 1}
    nodes = [
        {"id": f"c{c}_{i}", "type": "step", "params": params}
        for c in range(count)
        for i in range(length)
    ]
    edges = [
        {"from": f"c{c}_{i}.y", "to": f"c{c}_{i + 1}.x"}
        for c in range(count)
        for i in range(length - 1)
    ]
    document = {"schema_version": 1, "name": f"{count}x{length}", "nodes": nodes, "edges": edges}
    return from_builtins(document)


async def rerun_figures(
    service: RunService, wait_s: float, repeats: int, workflow: Workflow | None = None
) -> dict[str, Any]:
    """A one-leaf rerun, timed three ways: with the parent among the runs the service keeps in
    memory; in a new service (as `nodeloom rerun` or a restarted server: nothing in memory, a
    registry and a result writer of its own; from the plan `nodeloom rerun` shows to the child's
    end); and in this service after 10 other runs pushed the parent out."""
    workflow = workflow or chains(10, 100, wait_s)
    leaf = workflow.nodes[-1].id
    times: dict[str, list[float]] = {
        "full": [],
        "after": [],
        "memory": [],
        "new": [],
        "evicted": [],
    }
    executed = set()

    async def rerun(on: RunService, parent_id: str, key: str, tag: int) -> None:
        await service.settled()
        started = time.perf_counter()
        if key == "new":  # as `nodeloom rerun`: it shows the parent's plan, then reruns
            await on.run_plan(parent_id)
        # As the API reruns with `"wait": true` (and `execute` runs): the caller waits.
        handle = await on.rerun(parent_id, params={leaf: {"tag": tag}}, caller_waits=True)
        child = await handle.wait()
        times[key].append(time.perf_counter() - started)
        assert child.status == "succeeded", child.error
        executed.add(sum(1 for state in child.nodes.values() if state.status == "succeeded"))

    for repeat in range(repeats):
        started = time.perf_counter()
        parent = await service.execute(workflow)
        times["full"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await service.settled()
        times["after"].append(time.perf_counter() - started)
        await rerun(service, parent.id, "memory", 2 + repeat)
        fresh = RunService(service.store.database, registry())
        try:
            await rerun(fresh, parent.id, "new", 2 + repeat)
        finally:
            await fresh.close()
        for _ in range(10):
            await service.execute(chains(1, 3))
        await rerun(service, parent.id, "evicted", 2 + repeat)
    medians = {key: statistics.median(found) for key, found in times.items()}
    (count,) = executed
    return {**medians, "executed": count}


async def in_memory_ms_per_node(workflow: Workflow, repeats: int) -> float:
    plan = compile_plan(workflow, registry())
    times = []
    for repeat in range(repeats):
        started = time.perf_counter()
        await Execution(RunStart(id=f"mem{repeat}", plan=plan, inputs={})).execute()
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
        print(
            f"\n{label}: rerun after changing one leaf of a 1,000-node workflow "
            "(target: 1 node executed, rerun <= 5% of the full run)"
        )
        for wait_s in WAITS:
            figures = await rerun_figures(service, wait_s, repeats)
            kind = f"{wait_s * 1000:g} ms nodes" if wait_s else "trivial nodes"
            print(f"  {kind:>14}: {_rerun_line(figures)}")
        print(
            f"{label}: rerun after changing the leaf of a 40-node chain "
            "(target: no slower than its full run)"
        )
        figures = await rerun_figures(service, 0.0, repeats, chains(1, 40))
        print(f"  {'40 nodes':>14}: {_rerun_line(figures)}")
        print(
            f"{label}: persistence per node on sequential chains "
            "(target: SQLite <= 1 ms, PostgreSQL <= 3 ms, flat from 40 to 1,000)"
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


def _rerun_line(figures: dict[str, Any]) -> str:
    full = figures["full"]
    parts = [f"full run {full * 1000:6.1f} ms (+{figures['after'] * 1000:3.1f} after)"]
    for key, label in (("memory", "in memory"), ("new", "new process"), ("evicted", "evicted")):
        parts.append(f"{label} {figures[key] * 1000:5.1f} ms {figures[key] / full:6.1%}")
    return "   ".join(parts) + f"   executed {figures['executed']}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--sqlite-only", action="store_true")
    options = parser.parse_args()
    repeats = 3 if options.quick else 9
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "log").open("w") as log:
        configure_logging(json=True, file=log)
        await measure("SQLite", f"sqlite+aiosqlite:///{folder}/bench.db", repeats)
        if not options.sqlite_only:
            from tests.support import postgres  # noqa: PLC0415 - only when PostgreSQL is measured

            with postgres.cluster(durable=True) as cluster:
                await measure("PostgreSQL (fsync on)", cluster.create_database(), repeats)


if __name__ == "__main__":
    asyncio.run(main())
