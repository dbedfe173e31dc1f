"""Replay costs (SPEC §17): a replay of a 1,000-node run of trivial nodes against its full run.

    .venv/bin/python bench/replay.py            # 7 repetitions
    .venv/bin/python bench/replay.py --quick    # 3

A run service on SQLite (a file), a workflow of 10 parallel chains of 100 template nodes, every
tenth an `llm`-free recordable `tool` node (json_path): the full run, then a replay of it, in a
new service each time (so the replay reads its parent from the database, as `nodeloom replay` or
a restarted server does). A replay executes every node again; the recordable ones take the
recorded output. Target: replay <= 1.2x the full run. Medians over the repetitions.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.documents.document import from_builtins  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from server.plugins import installed_registry  # noqa: E402

TARGET = 1.2
CHAINS, LENGTH = 10, 100
ARGS = '{"value": {"v": {{ x | tojson }}}, "path": "$.v"}'  # json_path's args, x inside


def document() -> Any:
    nodes: list[dict[str, Any]] = [
        {"id": "seed", "type": "input", "params": {"name": "seed", "default": "s"}}
    ]
    edges = []
    for chain in range(CHAINS):
        previous = "seed.value"
        for step in range(LENGTH):
            node_id = f"c{chain}_{step}"
            if step % 10 == 9:  # a recordable node, answered from the record on replay
                nodes.append({"id": f"{node_id}_args", "type": "template",
                              "params": {"template": ARGS, "format": "json"}})  # fmt: skip
                edges.append({"from": previous, "to": f"{node_id}_args.x"})
                nodes.append({"id": node_id, "type": "tool", "params": {"tool": "json_path"}})
                edges.append({"from": f"{node_id}_args.json", "to": f"{node_id}.args"})
                previous = f"{node_id}.result"
            else:
                nodes.append({"id": node_id, "type": "template",
                              "params": {"template": "{{ x }}" + str(step % 10)}})  # fmt: skip
                edges.append({"from": previous, "to": f"{node_id}.x"})
                previous = f"{node_id}.text"
        nodes.append({"id": f"out{chain}", "type": "output", "params": {"name": f"out{chain}"}})
        edges.append({"from": previous, "to": f"out{chain}.value"})
    return from_builtins({"schema_version": 1, "name": "Replayed", "nodes": nodes, "edges": edges})


async def once(url: str, workflow: Any) -> tuple[float, float, int]:
    """Full run and replay (each in a service of its own): their wall times, nodes replayed."""
    database = await Database.connect(url)
    try:
        service = RunService(database, installed_registry())
        started = time.perf_counter()
        full = await (await service.start(workflow, caller_waits=True)).wait()
        full_s = time.perf_counter() - started
        assert full.status == "succeeded", full.error
        await service.close()
        service = RunService(database, installed_registry())  # the parent only in the database
        started = time.perf_counter()
        replay = await (await service.replay(full.id, caller_waits=True)).wait()
        replay_s = time.perf_counter() - started
        await service.close()
    finally:
        await database.close()
    assert replay.status == "succeeded", replay.error
    assert replay.outputs == full.outputs
    replayed = sum(state.reason_code == "replayed" for state in replay.nodes.values())
    return full_s, replay_s, replayed


async def main_async(args: argparse.Namespace) -> int:
    workflow = document()
    count = len(workflow.nodes)
    fulls, replays = [], []
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/replay.db"
        await once(url, workflow)  # warm-up
        for _ in range(args.repeat):
            full_s, replay_s, replayed = await once(url, workflow)
            fulls.append(full_s)
            replays.append(replay_s)
    full_ms, replay_ms = statistics.median(fulls) * 1000, statistics.median(replays) * 1000
    ratio = replay_ms / full_ms
    print(f"{count} nodes ({replayed} recordable, taken from the record on replay)")
    print(f"full run           {full_ms:8.1f} ms median of {args.repeat}")
    print(f"replay (from db)   {replay_ms:8.1f} ms median")
    print(f"replay / full run  {ratio:8.2f}x (target <= {TARGET}x)")
    print("targets met" if ratio <= TARGET else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 3
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
