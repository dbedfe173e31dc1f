"""`nodeloom worker` subprocesses (`tests.support.worker`) for the worker tests and the scale-out
benchmark: starting them, waiting until they listen, the queue drained, a fan-out workflow."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.distributed.pgq import PgQueuerDispatcher
from engine.storage.database import Database
from tests.support.documents import ROOT

LEASE_S = 2.0  # short leases keep the takeover tests quick


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def name_suffix(self) -> str:
        """How the worker names itself in `node_executions.worker`: ``host:pid``."""
        return f":{self.process.pid}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)


def start_worker(url: str, log: Path, *options: str) -> WorkerProcess:
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker", url, *options],
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    handle.close()
    return WorkerProcess(process, log)


def wait_ready(workers: list[WorkerProcess], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        while "executing nodes from" not in worker.output():
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{worker.output()}")
            time.sleep(0.05)


DRAIN_S = 10.0


async def live_jobs_after_draining(database: Database) -> int:
    """Jobs left in the queue once it is empty or ``DRAIN_S`` passed: workers remove finished
    jobs shortly after committing their nodes, in batches."""
    deadline = time.monotonic() + DRAIN_S
    while True:
        async with database.engine.connect() as connection:
            live = await PgQueuerDispatcher().live_jobs(connection)
        if live == 0 or time.monotonic() > deadline:
            return live
        await asyncio.sleep(0.1)


def fan_out(width: int, seconds: float) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """A root, ``width`` parallel nodes sleeping ``seconds`` each, a join and an output."""
    nodes: list[dict[str, Any]] = [
        {"id": "root", "type": "sleep", "params": {"seconds": 0.01, "label": "R"}}
    ]
    edges = []
    for i in range(width):
        nodes.append({"id": f"n{i}", "type": "sleep", "params": {"seconds": seconds}})
        edges += [("root.y", f"n{i}.x"), (f"n{i}.y", "join.items")]
    nodes += [
        {"id": "join", "type": "aggregate", "params": {"mode": "list"}},
        {"id": "out", "type": "output", "params": {"name": "result"}},
    ]
    edges.append(("join.result", "out.value"))
    return nodes, edges
