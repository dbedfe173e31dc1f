"""Schedules (SPEC §16): a workflow run at every slot of a cron expression. Each slot is
claimed by one conditional update of `next_run_at` (from the slot to the one after it): however
many servers share the database and see the slot due, one update matches, and only the server
whose update did starts the slot's run. A claimed slot whose run was never recorded (its
server stopped in between) is taken over by one server later, which starts the run unless
one was stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import RunRow, ScheduleRow

__all__ = ["CatchUp", "Schedule", "ScheduleStore", "claimed", "schedule"]

CatchUp = Literal["none", "latest"]
# `last_run_id` while a slot's run is being started (`claimed:<when>`), and once it is
# settled without one (it could not be started); the API shows both as null.
CLAIMED = "claimed:"
NO_RUN = ""


def claimed(at: datetime) -> str:
    """The claim marker of a slot claimed ``at``; markers sort as their moments."""
    return CLAIMED + at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


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
        self,
        schedule_id: str,
        slot: datetime,
        following: datetime,
        *,
        ran: datetime | None,
        at: datetime,
    ) -> bool:
        """Move the schedule from ``slot`` on to ``following``; True for the one caller whose
        update found it still at ``slot``. ``ran``: the slot a run is started for, if any: it
        is `last_run_at`, claimed ``at`` this moment until `ran` records its run."""
        values: dict[str, Any] = {"next_run_at": following}
        if ran is not None:
            values.update(last_run_at=ran, last_run_id=claimed(at))
        async with self.sessions.begin() as session:
            done = await session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.next_run_at == slot)
                .values(**values)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def ran(self, schedule_id: str, slot: datetime, run_id: str | None) -> None:
        """The run started for ``slot`` (None: none could be started)."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.last_run_at == slot)
                .values(last_run_id=run_id or NO_RUN)
            )

    async def unstarted(self, before: datetime) -> list[ScheduleRow]:
        """Schedules whose last slot was claimed before ``before`` and whose run was never
        recorded: the process that claimed it stopped before it could say."""
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(ScheduleRow).where(
                        ScheduleRow.last_run_id.startswith(CLAIMED),
                        ScheduleRow.last_run_id < claimed(before),
                    )
                )
            )

    async def claim_unstarted(self, schedule_id: str, marker: str, at: datetime) -> bool:
        """Take over starting the run of a slot claimed as ``marker``: True for one caller."""
        async with self.sessions.begin() as session:
            done = await session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.last_run_id == marker)
                .values(last_run_id=claimed(at))
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def run_since(self, schedule_id: str, slot: datetime) -> str | None:
        """A run the schedule started at ``slot`` or after, if one was stored."""
        async with self.sessions() as session:
            found: str | None = await session.scalar(
                select(RunRow.id)
                .where(RunRow.trigger == f"schedule:{schedule_id}", RunRow.created_at >= slot)
                .order_by(RunRow.created_at)
                .limit(1)
            )
            return found


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
        last_run_id=None
        if not row.last_run_id or row.last_run_id.startswith(CLAIMED)
        else row.last_run_id,
    )
