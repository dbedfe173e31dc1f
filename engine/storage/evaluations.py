"""Datasets and evaluations as stored (SPEC §17)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import DatasetRow, EvaluationRow

__all__ = ["Dataset", "EvaluationStore", "StoredEvaluation"]


class Dataset(msgspec.Struct, kw_only=True):
    id: str
    name: str
    rows: list[dict[str, Any]]
    created_at: datetime


class StoredEvaluation(msgspec.Struct, kw_only=True):
    id: str
    workflow_id: str
    dataset_id: str
    spec: dict[str, Any]
    status: str
    report: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None = None
    owner_id: str | None = None
    driver: str | None = None
    heartbeat_at: datetime | None = None


class EvaluationStore:
    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create_dataset(
        self, name: str, rows: list[dict[str, Any]], *, owner_id: str | None
    ) -> Dataset:
        row = DatasetRow(id=new_id("ds"), owner_id=owner_id, name=name, rows=rows, created_at=now())
        async with self.sessions.begin() as session:
            session.add(row)
        return _dataset(row)

    async def dataset(self, dataset_id: str, *, owner_id: str | None) -> Dataset:
        async with self.sessions() as session:
            row = await session.get(DatasetRow, dataset_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"dataset {dataset_id} not found")
        return _dataset(row)

    async def datasets(self, *, owner_id: str | None) -> list[Dataset]:
        query = select(DatasetRow).order_by(DatasetRow.created_at.desc())
        if owner_id is not None:
            query = query.where(DatasetRow.owner_id == owner_id)
        async with self.sessions() as session:
            return [_dataset(row) for row in await session.scalars(query)]

    async def create_evaluation(
        self,
        spec: dict[str, Any],
        report: dict[str, Any],
        *,
        owner_id: str | None,
        driver: str | None = None,
    ) -> StoredEvaluation:
        row = EvaluationRow(
            id=new_id("eval"),
            owner_id=owner_id,
            workflow_id=spec["workflow_id"],
            dataset_id=spec["dataset_id"],
            spec=spec,
            status="running",
            report=report,
            created_at=now(),
            finished_at=None,
            driver=driver,
            heartbeat_at=now(),
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return _evaluation(row)

    async def update(
        self, evaluation_id: str, report: dict[str, Any], *, status: str | None = None
    ) -> None:
        values: dict[str, Any] = {"report": report}
        if status is not None:
            values["status"] = status
            if status != "running":
                values["finished_at"] = now()
        async with self.sessions.begin() as session:
            await session.execute(
                update(EvaluationRow).where(EvaluationRow.id == evaluation_id).values(**values)
            )

    async def evaluations(
        self, workflow_id: str, *, owner_id: str | None, limit: int = 50
    ) -> list[StoredEvaluation]:
        """A workflow's evaluations, newest first."""
        query = select(EvaluationRow).where(EvaluationRow.workflow_id == workflow_id)
        if owner_id is not None:
            query = query.where(EvaluationRow.owner_id == owner_id)
        query = query.order_by(EvaluationRow.created_at.desc()).limit(limit)
        async with self.sessions() as session:
            return [_evaluation(row) for row in await session.scalars(query)]

    async def unfinished(self) -> list[StoredEvaluation]:
        """The evaluations left `interrupted` by a server that stopped, and those `running`
        (whose driver may have died: see their heartbeat)."""
        query = select(EvaluationRow).where(EvaluationRow.status.in_(("interrupted", "running")))
        async with self.sessions() as session:
            return [_evaluation(row) for row in await session.scalars(query)]

    async def take_over(self, stored: StoredEvaluation, process: str) -> bool:
        """Drive the evaluation from ``process``, if it is still as ``stored`` says (same
        status and driver): True for the one process whose update found it so."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(EvaluationRow)
                .where(
                    EvaluationRow.id == stored.id,
                    EvaluationRow.status == stored.status,
                    EvaluationRow.driver.is_(None)
                    if stored.driver is None
                    else EvaluationRow.driver == stored.driver,
                )
                .values(status="running", finished_at=None, driver=process, heartbeat_at=now())
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def heartbeat(self, evaluation_ids: list[str], process: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(EvaluationRow)
                .where(EvaluationRow.id.in_(evaluation_ids), EvaluationRow.driver == process)
                .values(heartbeat_at=now())
            )

    async def evaluation(self, evaluation_id: str, *, owner_id: str | None) -> StoredEvaluation:
        async with self.sessions() as session:
            row = await session.get(EvaluationRow, evaluation_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"evaluation {evaluation_id} not found")
        return _evaluation(row)


def _dataset(row: DatasetRow) -> Dataset:
    return Dataset(id=row.id, name=row.name, rows=row.rows, created_at=row.created_at)


def _evaluation(row: EvaluationRow) -> StoredEvaluation:
    return StoredEvaluation(
        id=row.id,
        workflow_id=row.workflow_id,
        dataset_id=row.dataset_id,
        spec=row.spec,
        status=row.status,
        report=row.report,
        created_at=row.created_at,
        finished_at=row.finished_at,
        owner_id=row.owner_id,
        driver=row.driver,
        heartbeat_at=row.heartbeat_at,
    )
