"""Worker subprocesses against a real PostgreSQL, and the run service that queues runs for them."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.distributed.launch import Queued
from engine.distributed.pgq import PgQueuerDispatcher
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.nodes import test_registry
from tests.support.workers import LEASE_S, WorkerProcess, start_worker, wait_ready


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
