"""Worker subprocesses against a real PostgreSQL, and the run service that queues runs for them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.distributed.launch import Queued
from engine.distributed.pgq import PgQueuerDispatcher
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.conftest import ROOT
from tests.nodes_for_tests import test_registry

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


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    return str(pg_cluster.create_database())


@pytest.fixture
def workers(pg_url: str, tmp_path: Path) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Start ``n`` worker processes (lease `LEASE_S`) and wait until they listen."""
    started: list[WorkerProcess] = []

    def start(n: int, *options: str) -> list[WorkerProcess]:
        new = [
            start_worker(
                pg_url,
                tmp_path / f"worker{len(started) + i}.log",
                "--lease-timeout",
                str(LEASE_S),
                *options,
            )
            for i in range(n)
        ]
        started.extend(new)
        wait_ready(new)
        return new

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.signal(signal.SIGCONT)
            worker.process.kill()
        worker.process.wait(timeout=10)


@pytest.fixture
async def database(pg_url: str) -> AsyncIterator[Database]:
    db = await Database.connect(pg_url)  # migrates, as `nodeloom serve` does
    yield db
    await db.close()


@pytest.fixture
async def queued(database: Database) -> AsyncIterator[RunService]:
    """A run service that queues its runs for the workers."""
    service = RunService(
        database,
        test_registry(),
        lease_timeout_s=LEASE_S,
        launcher=Queued(database, workspace=Path("workspace"), dispatcher=PgQueuerDispatcher()),
    )
    yield service
    await service.close()


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
