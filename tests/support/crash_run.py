"""Starts a stored run of a slow workflow and waits; the test kills this process mid-run.

Usage: python -m tests.support.crash_run DATABASE_URL
"""

from __future__ import annotations

import asyncio
import sys

from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.documents import workflow
from tests.support.nodes import test_registry

NODES = [
    {"id": "a", "type": "sleep", "params": {"seconds": 0.01, "label": "A"}},
    {"id": "b", "type": "sleep", "params": {"seconds": 0.01}},
    {"id": "slow", "type": "sleep", "params": {"seconds": 1.0}},
    {"id": "side", "type": "sleep", "params": {"seconds": 0.01, "label": "S"}},
    {"id": "last", "type": "aggregate", "params": {"mode": "list"}},
    {"id": "out", "type": "output", "params": {"name": "result"}},
]
EDGES = [
    ("a.y", "b.x"),
    ("b.y", "slow.x"),
    ("slow.y", "last.items"),
    ("side.y", "last.items"),
    ("last.result", "out.value"),
]


async def main(url: str) -> None:
    database = await Database.connect(url)
    service = RunService(database, test_registry(), lease_timeout_s=30)
    active = await service.start(workflow(NODES, EDGES))
    print(active.id, flush=True)
    await active.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
