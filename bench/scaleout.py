"""Scale-out: node throughput with 1, 2 and 4 `nodeloom worker` processes on one PostgreSQL.

    .venv/bin/python bench/scaleout.py                  # 4 runs x 60 nodes per configuration
    .venv/bin/python bench/scaleout.py --quick          # 2 runs x 24 nodes
    .venv/bin/python bench/scaleout.py --concurrency 4  # nodes each worker executes at once
    .venv/bin/python bench/scaleout.py --map            # the waits as the items of one map

Each node waits 100 ms (I/O-bound, like a call to a remote model). Every configuration starts
its workers on a fresh database of a throwaway PostgreSQL cluster, queues the same runs at once
(a root, N parallel waiting nodes, a join) and times them to the end. With ``--map``, each run
is instead one `map` over N items whose body is the item's input, a 100 ms wait and the output:
the items' nodes are jobs spread over the workers as any node is. The speed-up is over 1
worker in the same invocation. Queue overhead per node is the worker slot time a node takes
beyond its 100 ms: (wall time x slots / nodes) - 100 ms (with ``--map``: per item, whose
input and output nodes are jobs too).

With one node at a time per worker (the default), a worker is one unit of capacity and the
speed-up shows how the queue spreads work over workers. With more at a time, all the workers,
PostgreSQL and this script share this machine's cores: the figures then show where the
machine, not the queue, runs out (CPU time per node is printed for that reason).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.distributed.launch import Queued  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.documents import workflow  # noqa: E402
from tests.support.nodes import test_registry  # noqa: E402
from tests.support.workers import fan_out, start_worker, wait_ready  # noqa: E402

WAIT_S = 0.1
TARGET_SPEEDUP_4 = 3.5
TARGET_OVERHEAD_MS = 10.0


def mapped(width: int) -> tuple[Any, dict[str, Any]]:
    """One map over ``width`` items, each waiting `WAIT_S`, and its inputs."""
    body = {
        "nodes": [
            {"id": "item", "type": "input", "params": {"name": "item"}},
            {"id": "wait", "type": "sleep", "params": {"seconds": WAIT_S}},
            {"id": "out", "type": "output", "params": {"name": "y"}},
        ],
        "edges": [{"from": "item.value", "to": "wait.x"}, {"from": "wait.y", "to": "out.value"}],
    }
    nodes = [
        {"id": "items", "type": "input", "params": {"name": "items", "schema": {"type": "array"}}},
        {"id": "m", "type": "map", "params": {"graph": "body", "concurrency": width}},
        {"id": "ys", "type": "output", "params": {"name": "ys"}},
    ]
    edges = [("items.value", "m.items"), ("m.y", "ys.value")]
    return workflow(nodes, edges, subgraphs={"body": body}), {"items": list(range(width))}


async def measure(
    url: str,
    workers: int,
    concurrency: int,
    *,
    runs: int,
    width: int,
    logs: Path,
    as_map: bool = False,
) -> dict[str, Any]:
    database = await Database.connect(url)  # migrates, as the server does
    pool = [
        start_worker(url, logs / f"w{workers}-{i}.log", "--concurrency", str(concurrency))
        for i in range(workers)
    ]
    try:
        wait_ready(pool)
        service = RunService(
            database,
            test_registry(),
            launcher=Queued(database, workspace=Path("workspace")),
        )
        if as_map:
            document, inputs = mapped(width)
        else:
            nodes, edges = fan_out(width, WAIT_S)
            document, inputs = workflow(nodes, edges), {}
        processes = [worker.process.pid for worker in pool]
        cpu_before = cpu_ms(processes)
        started = time.perf_counter()
        active = [await service.start(document, inputs) for _ in range(runs)]
        records = await asyncio.gather(*(run.wait() for run in active))
        wall = time.perf_counter() - started
        cpu = cpu_ms(processes) - cpu_before
        await service.close()
    finally:
        for worker in pool:
            worker.signal(signal.SIGTERM)
        for worker in pool:
            worker.process.wait(timeout=30)
        await database.close()
    bad = [record.status for record in records if record.status != "succeeded"]
    if bad:
        raise SystemExit(f"runs did not succeed: {bad}")
    count = runs * width
    slots = workers * concurrency
    return {
        "workers": workers,
        "nodes": count,
        "wall_s": wall,
        "nodes_per_s": count / wall,
        "overhead_ms": (wall * slots / count - WAIT_S) * 1000,
        "worker_cpu_ms": cpu / count,
    }


def cpu_ms(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far, in ms."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


async def main(quick: bool, concurrency: int, as_map: bool) -> int:
    runs, width = (2, 24) if quick else (4, 60)
    results = []
    with postgres.cluster(durable=True) as cluster, tempfile.TemporaryDirectory() as logs:
        for workers in (1, 2, 4):
            url = cluster.create_database()
            results.append(
                await measure(
                    url,
                    workers,
                    concurrency,
                    runs=runs,
                    width=width,
                    logs=Path(logs),
                    as_map=as_map,
                )
            )
    base = results[0]["nodes_per_s"]
    if as_map:
        print(f"each run one map over {width} items; 'nodes' are the items (3 jobs each)")
    print(f"each worker executes at most {concurrency} node(s) at once")
    print(
        f"{'workers':>7} {'nodes':>6} {'wall s':>7} {'nodes/s':>8} {'speed-up':>8} {'ovh ms':>7}"
        f" {'worker CPU ms/node':>18}"
    )
    for row in results:
        print(
            f"{row['workers']:>7} {row['nodes']:>6} {row['wall_s']:>7.2f} "
            f"{row['nodes_per_s']:>8.1f} {row['nodes_per_s'] / base:>7.2f}x "
            f"{row['overhead_ms']:>7.1f} {row['worker_cpu_ms']:>18.1f}"
        )
    speedup = results[-1]["nodes_per_s"] / base
    overhead = results[0]["overhead_ms"]
    print(
        f"4 workers: {speedup:.2f}x 1 worker (target >= {TARGET_SPEEDUP_4}x); "
        f"queue overhead with 1 worker: {overhead:.1f} ms/node (target <= {TARGET_OVERHEAD_MS})"
    )
    # A map's item is three jobs: the overhead target is the plain nodes'.
    return 0 if speedup >= TARGET_SPEEDUP_4 and (as_map or overhead <= TARGET_OVERHEAD_MS) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="nodes each worker executes at once"
    )
    parser.add_argument(
        "--map", action="store_true", help="the waits as the items of one map per run"
    )
    os.environ.setdefault("NODELOOM_LEASE_TIMEOUT_S", "10")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.quick, arguments.concurrency, arguments.map)))
