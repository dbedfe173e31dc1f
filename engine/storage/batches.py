"""Batches: one workflow run once per input set, the runs kept together under one batch id.
A batch's status (`running`, `done`, `cancelled`) and the process driving it are stored, with
that process's heartbeat: a batch whose driver stopped is taken over by one other process
(a conditional update), and a cancelled batch stays cancelled."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import BatchRow, BatchRunRow, RunRow

__all__ = ["BatchRun", "BatchStore", "StoredBatch", "stale"]


class BatchRun(msgspec.Struct, kw_only=True):
    """One item of a batch and the run started for it (None until it is started)."""

    index: int
    inputs: dict[str, Any]
    run_id: str | None = None
    status: str = "pending"
    outputs: dict[str, Any] = {}
    error: str | None = None


class StoredBatch(msgspec.Struct, kw_only=True):
    id: str
    workflow_id: str
    workflow_version: int
    created_at: datetime
    runs: list[BatchRun]
    status: str = "running"  # running, done, cancelled
    driver: str | None = None
    heartbeat_at: datetime | None = None
    owner_id: str | None = None


class BatchStore:
    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create(
        self,
        workflow_id: str,
        workflow_version: int,
        items: list[dict[str, Any]],
        *,
        owner_id: str | None,
        driver: str | None = None,
    ) -> StoredBatch:
        row = BatchRow(
            id=new_id("batch"),
            owner_id=owner_id,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            items=items,
            created_at=now(),
            status="running",
            driver=driver,
            heartbeat_at=now(),
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return StoredBatch(
            id=row.id,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            created_at=row.created_at,
            runs=[BatchRun(index=index, inputs=inputs) for index, inputs in enumerate(items)],
            driver=driver,
            owner_id=owner_id,
        )

    async def add_run(self, batch_id: str, index: int, run_id: str) -> None:
        async with self.sessions.begin() as session:
            session.add(BatchRunRow(batch_id=batch_id, index=index, run_id=run_id))

    async def get(self, batch_id: str, *, owner_id: str | None = None) -> StoredBatch:
        """The batch with each item's run as it stands."""
        async with self.sessions() as session:
            row = await session.get(BatchRow, batch_id)
            if row is None or (owner_id is not None and row.owner_id != owner_id):
                raise NotFound(f"batch {batch_id} not found")
            found = await session.execute(
                select(BatchRunRow.index, RunRow.id, RunRow.status, RunRow.outputs, RunRow.error)
                .join(RunRow, RunRow.id == BatchRunRow.run_id)
                .where(BatchRunRow.batch_id == batch_id)
            )
            started = {
                index: (run_id, status, outputs, error)
                for index, run_id, status, outputs, error in found
            }
        runs = []
        for index, inputs in enumerate(row.items):
            run = BatchRun(index=index, inputs=inputs)
            if index in started:
                run.run_id, run.status, run.outputs, run.error = started[index]
            runs.append(run)
        return StoredBatch(
            id=row.id,
            workflow_id=row.workflow_id,
            workflow_version=row.workflow_version,
            created_at=row.created_at,
            runs=runs,
            status=row.status,
            driver=row.driver,
            heartbeat_at=row.heartbeat_at,
            owner_id=row.owner_id,
        )

    async def set_status(self, batch_id: str, status: str) -> bool:
        """`done` or `cancelled`, from `running`: False when it was no longer running."""
        async with self.sessions.begin() as session:
            done = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == "running")
                .values(status=status)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def statuses(self, batch_ids: list[str]) -> dict[str, str]:
        async with self.sessions() as session:
            found = await session.execute(
                select(BatchRow.id, BatchRow.status).where(BatchRow.id.in_(batch_ids))
            )
            return {str(row.id): str(row.status) for row in found}

    async def heartbeat(self, batch_ids: list[str], process: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(BatchRow)
                .where(BatchRow.id.in_(batch_ids), BatchRow.driver == process)
                .values(heartbeat_at=now())
            )

    async def running(self) -> list[tuple[str, str | None, datetime | None]]:
        """Every running batch: its id, driver and the driver's last heartbeat."""
        async with self.sessions() as session:
            found = await session.execute(
                select(BatchRow.id, BatchRow.driver, BatchRow.heartbeat_at).where(
                    BatchRow.status == "running"
                )
            )
            return [(batch_id, driver, beat) for batch_id, driver, beat in found]

    async def take_over(self, batch_id: str, driver: str | None, process: str) -> bool:
        """Drive the batch from ``process``, if it is still ``driver``'s: True for the one
        process whose update found it so."""
        async with self.sessions.begin() as session:
            done = await session.execute(
                update(BatchRow)
                .where(
                    BatchRow.id == batch_id,
                    BatchRow.status == "running",
                    BatchRow.driver.is_(None) if driver is None else BatchRow.driver == driver,
                )
                .values(driver=process, heartbeat_at=now())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def unrecorded_runs(self, batch_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Runs started for the batch whose item was not recorded (their process stopped in
        between): each run's id and inputs, oldest first."""
        async with self.sessions() as session:
            recorded = select(BatchRunRow.run_id).where(BatchRunRow.batch_id == batch_id)
            found = await session.execute(
                select(RunRow.id, RunRow.inputs)
                .where(RunRow.trigger == f"batch:{batch_id}", RunRow.id.not_in(recorded))
                .order_by(RunRow.created_at, RunRow.id)
            )
            return [(run_id, inputs) for run_id, inputs in found]


def stale(heartbeat_at: datetime | None, lease_timeout_s: float) -> bool:
    return heartbeat_at is None or heartbeat_at < now() - timedelta(seconds=lease_timeout_s)
