"""Schedules (SPEC §16): a workflow run at every slot of a cron expression. Each slot is
claimed by one conditional update of `next_run_at` (from the slot to the one after it): however
many servers share the database and see the slot due, one update matches, and only the server
whose update did starts the slot's run."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import ScheduleRow

__all__ = ["CatchUp", "Schedule", "ScheduleStore"]

CatchUp = Literal["none", "latest"]


class Schedule(msgspec.Struct, kw_only=True):
    id: str
    workflow_id: str
    cron: str
    timezone: str
    inputs: dict[str, Any]
    catch_up: str
    next_run_at: datetime
    created_at: datetime
    last_run_at: datetime | None = None
    last_run_id: str | None = None


class ScheduleStore:
    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create(
        self,
        workflow_id: str,
        *,
        owner_id: str | None,
        cron: str,
        timezone: str,
        inputs: dict[str, Any],
        catch_up: CatchUp,
        next_run_at: datetime,
    ) -> Schedule:
        row = ScheduleRow(
            id=new_id("sched"),
            workflow_id=workflow_id,
            owner_id=owner_id,
            cron=cron,
            timezone=timezone,
            inputs=inputs,
            catch_up=catch_up,
            next_run_at=next_run_at,
            created_at=now(),
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return schedule(row)

    async def of_workflow(self, workflow_id: str) -> list[Schedule]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(ScheduleRow)
                .where(ScheduleRow.workflow_id == workflow_id)
                .order_by(ScheduleRow.created_at, ScheduleRow.id)
            )
            return [schedule(row) for row in rows]

    async def delete(self, workflow_id: str, schedule_id: str) -> None:
        async with self.sessions.begin() as session:
            done = await session.execute(
                delete(ScheduleRow).where(
                    ScheduleRow.id == schedule_id, ScheduleRow.workflow_id == workflow_id
                )
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"schedule {schedule_id} not found")

    async def due(self, moment: datetime) -> list[ScheduleRow]:
        """Schedules whose next slot has come."""
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(ScheduleRow)
                    .where(ScheduleRow.next_run_at <= moment)
                    .order_by(ScheduleRow.next_run_at)
                )
            )

    async def claim(
        self, schedule_id: str, slot: datetime, following: datetime, *, ran: datetime | None
    ) -> bool:
        """Move the schedule from ``slot`` on to ``following``; True for the one caller whose
        update found it still at ``slot``. ``ran``: the slot a run is started for, if any."""
        values: dict[str, Any] = {"next_run_at": following}
        if ran is not None:
            values["last_run_at"] = ran
        async with self.sessions.begin() as session:
            done = await session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.next_run_at == slot)
                .values(**values)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def ran(self, schedule_id: str, run_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(last_run_id=run_id)
            )


def schedule(row: ScheduleRow) -> Schedule:
    return Schedule(
        id=row.id,
        workflow_id=row.workflow_id,
        cron=row.cron,
        timezone=row.timezone,
        inputs=row.inputs,
        catch_up=row.catch_up,
        next_run_at=row.next_run_at,
        created_at=row.created_at,
        last_run_at=row.last_run_at,
        last_run_id=row.last_run_id,
    )
