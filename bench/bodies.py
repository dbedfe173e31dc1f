"""Bodies: what a `map` costs against the same nodes as a flat graph, and what a rerun with one
item changed costs against the full run.

    .venv/bin/python bench/bodies.py            # 1,000 items (under a minute)
    .venv/bin/python bench/bodies.py --quick    # fewer repetitions

1. In memory (the bare executor, no store): a `map` over 1,000 items whose body is 3 nodes
   (the item's input, a step, the output), against the same 3,000 nodes as 1,000 chains in one
   flat graph (1,000 inputs, steps and outputs), in the same process, alternating; per inner
   node, and the ratio (target <= 1.5x). Then the same on plans compiled just before each run:
   a plan keeps its instances' nodes once made (`Plan.instance`), a first run makes them.
2. Stored (the run service on SQLite): the map's full run, then a rerun with one item changed,
   with the parent in the service's memory and read from the database by a new service
   (target: exactly the changed item's 3 inner nodes execute; <= 5% of the full run). A run's
   time ends with its end stored; what is stored after it (what a rerun of it may take over)
   is timed on its own, and each rerun starts once that is stored, as a rerun asked for later
   finds it.
3. A loop carrying a value through 10 iterations, rerun from a parent that stopped after 6: the
   iterations that execute (target: 7 to 10 only).

Figures are medians over the repetitions; the service logs JSON lines to a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reruns import registry

from engine.documents.document import Workflow, from_builtins
from engine.documents.graph import compile_plan
from engine.documents.inputs import resolve_inputs
from engine.execution.executor import Execution
from engine.execution.start import RunStart
from engine.runs.service import RunService
from engine.storage.database import Database
from server.logs import configure_logging

ITEMS = 1000


def mapped() -> Workflow:
    body = {
        "nodes": [
            {"id": "x", "type": "input", "params": {"name": "x", "schema": {"type": "integer"}}},
            {"id": "step", "type": "step", "params": {"tag": 1}},
            {"id": "y", "type": "output", "params": {"name": "y"}},
        ],
        "edges": [{"from": "x.value", "to": "step.x"}, {"from": "step.y", "to": "y.value"}],
    }
    nodes = [
        {"id": "items", "type": "input", "params": {"name": "items", "schema": {"type": "array"}}},
        {"id": "m", "type": "map", "params": {"graph": "body", "concurrency": 32}},
        {"id": "ys", "type": "output", "params": {"name": "ys"}},
    ]
    edges = [{"from": "items.value", "to": "m.items"}, {"from": "m.y", "to": "ys.value"}]
    document = {"schema_version": 1, "name": "map", "nodes": nodes, "edges": edges}
    return from_builtins({**document, "subgraphs": {"body": body}})


def looped(iterations: int) -> Workflow:
    """A value carried through ``iterations`` iterations of a 3-node body (input, step, output:
    one more each time)."""
    body = {
        "nodes": [
            {"id": "x", "type": "input", "params": {"name": "x"}},
            {"id": "step", "type": "step", "params": {"tag": 1}},
            {"id": "y", "type": "output", "params": {"name": "x"}},  # carried
        ],
        "edges": [{"from": "x.value", "to": "step.x"}, {"from": "step.y", "to": "y.value"}],
    }
    nodes = [
        {"id": "start", "type": "input", "params": {"name": "start", "default": 0}},
        {"id": "lp", "type": "loop", "params": {"graph": "body", "max_iterations": iterations}},
        {"id": "last", "type": "output", "params": {"name": "last"}},
    ]
    edges = [{"from": "start.value", "to": "lp.x"}, {"from": "lp.x", "to": "last.value"}]
    document = {"schema_version": 1, "name": "loop", "nodes": nodes, "edges": edges}
    return from_builtins({**document, "subgraphs": {"body": body}})


async def loop_rerun(url: str) -> list[int]:
    """The iterations a loop of 10 executes when its parent stopped after 6."""
    database = await Database.connect(url)
    service = RunService(database, registry())
    try:
        parent = await service.execute(looped(6))
        handle = await service.rerun(parent.id, params={"lp": {"max_iterations": 10}})
        child = await handle.wait()
        assert child.status == "succeeded", child.error
        assert child.outputs == {"last": 10}
        executed = {
            int(path.split("#")[1].split("/")[0])
            for path, state in child.nodes.items()
            if path.startswith("lp#") and state.status == "succeeded"
        }
    finally:
        await service.close()
        await database.close()
    return sorted(executed)


def flat() -> Workflow:
    """The same 3,000 nodes as 1,000 chains: an input, a step and an output each."""
    nodes, edges = [], []
    for item in range(ITEMS):
        schema = {"type": "integer"}
        nodes += [
            {"id": f"x{item}", "type": "input", "params": {"name": f"x{item}", "schema": schema}},
            {"id": f"s{item}", "type": "step", "params": {"tag": 1}},
            {"id": f"y{item}", "type": "output", "params": {"name": f"y{item}"}},
        ]
        edges += [
            {"from": f"x{item}.value", "to": f"s{item}.x"},
            {"from": f"s{item}.y", "to": f"y{item}.value"},
        ]
    return from_builtins({"schema_version": 1, "name": "flat", "nodes": nodes, "edges": edges})


async def in_memory(repeats: int, *, fresh: bool = False) -> tuple[float, float]:
    """Seconds per inner node: the map's, the flat graph's (medians). ``fresh``: each run on
    plans compiled just before (not timed), whose bodies' instance nodes are not made yet."""
    built = registry()
    map_plan, flat_plan = compile_plan(mapped(), built), compile_plan(flat(), built)
    items = {"items": list(range(ITEMS))}
    flat_inputs = resolve_inputs(flat_plan, {f"x{item}": item for item in range(ITEMS)})
    ours, theirs = [], []
    for repeat in range(repeats + 1):
        if fresh:
            map_plan, flat_plan = compile_plan(mapped(), built), compile_plan(flat(), built)
        started = time.perf_counter()
        result = await Execution(
            RunStart(id=f"m{repeat}", plan=map_plan, inputs=resolve_inputs(map_plan, items))
        ).execute()
        middle = time.perf_counter()
        flat_result = await Execution(
            RunStart(id=f"f{repeat}", plan=flat_plan, inputs=flat_inputs)
        ).execute()
        ended = time.perf_counter()
        assert result.status == "succeeded", result.error
        assert result.outputs["ys"][:3] == [1, 2, 3]
        assert flat_result.status == "succeeded"
        if repeat:  # the first warms up
            ours.append((middle - started) / (3 * ITEMS))
            theirs.append((ended - middle) / (3 * ITEMS))
    return statistics.median(ours), statistics.median(theirs)


async def stored(url: str, repeats: int) -> dict[str, Any]:
    database = await Database.connect(url)
    service = RunService(database, registry())
    times: dict[str, list[float]] = {"full": [], "after": [], "memory": [], "new": []}
    executed: set[int] = set()
    try:
        for repeat in range(repeats):
            items = [repeat * ITEMS + item for item in range(ITEMS)]
            started = time.perf_counter()
            parent = await service.execute(mapped(), {"items": items})
            times["full"].append(time.perf_counter() - started)
            assert parent.status == "succeeded", parent.error
            started = time.perf_counter()
            await service.settled()
            times["after"].append(time.perf_counter() - started)
            for key, on in (("memory", service), ("new", RunService(database, registry()))):
                changed = [*items[:500], -1, *items[501:]]
                await service.settled()
                started = time.perf_counter()
                handle = await on.rerun(parent.id, inputs={"items": changed}, caller_waits=True)
                child = await handle.wait()
                times[key].append(time.perf_counter() - started)
                assert child.status == "succeeded", child.error
                executed.add(sum(state.status == "succeeded" for state in child.nodes.values()))
                if on is not service:
                    await on.close()
    finally:
        await service.close()
        await database.close()
    return {key: statistics.median(found) for key, found in times.items()} | {"executed": executed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    options = parser.parse_args()
    repeats = 3 if options.quick else 7
    ours, theirs = await in_memory(repeats)
    print(
        f"in memory: a map over {ITEMS:,} items of a 3-node body against {3 * ITEMS:,} flat nodes"
    )
    print(
        f"  map {ours * 1e6:6.2f} µs per inner node   flat {theirs * 1e6:6.2f} µs per node"
        f"   ratio {ours / theirs:4.2f}x (target <= 1.5x)"
    )
    ours, theirs = await in_memory(repeats, fresh=True)
    print(
        f"  first run of each plan: map {ours * 1e6:6.2f} µs   flat {theirs * 1e6:6.2f} µs"
        f"   ratio {ours / theirs:4.2f}x (the instances' nodes made as they start)"
    )
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "log").open("w") as log:
        configure_logging(json=True, file=log)
        figures = await stored(f"sqlite+aiosqlite:///{folder}/bench.db", repeats)
        iterations = await loop_rerun(f"sqlite+aiosqlite:///{folder}/loop.db")
    full = figures["full"]
    print("SQLite: rerun of the map with one item changed (target: <= 5% of the full run)")
    print(
        f"  full run {full * 1000:7.1f} ms (+{figures['after'] * 1000:.1f} after)"
        f"   in memory {figures['memory'] * 1000:6.1f} ms {figures['memory'] / full:6.1%}"
        f"   new process {figures['new'] * 1000:6.1f} ms {figures['new'] / full:6.1%}"
        f"   nodes executed {sorted(figures['executed'])} (the map and its outputs count too)"
    )
    print(
        "loop of 10 iterations rerun from a parent that stopped after 6: iterations executed"
        f" {iterations} (target: 7 to 10 only)"
    )


if __name__ == "__main__":
    asyncio.run(main())
