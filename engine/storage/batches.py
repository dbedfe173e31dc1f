"""Batches: one workflow run once per input set, the runs kept together under one batch id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import BatchRow, BatchRunRow, RunRow

__all__ = ["BatchRun", "BatchStore", "StoredBatch"]


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
    ) -> StoredBatch:
        row = BatchRow(
            id=new_id("batch"),
            owner_id=owner_id,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            items=items,
            created_at=now(),
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return StoredBatch(
            id=row.id,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            created_at=row.created_at,
            runs=[BatchRun(index=index, inputs=inputs) for index, inputs in enumerate(items)],
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
        )
