"""The scheduler every server runs: it looks for due schedules a few times a second, claims
each due slot in the database (one conditional update; see engine/storage/schedules.py) and
starts that slot's run. Servers sharing a database each look; one claim per slot succeeds.

A slot is on time when it came less than `ON_TIME_S` ago; older slots were missed (no server
was running): ``catch_up: "latest"`` starts one run for the latest of them, ``"none"`` none.
Either way the schedule moves on to its next slot after now. A server that stops between
claiming a slot and recording its run leaves the slot to the next look after
`UNSTARTED_AFTER_S`, by any server: its run is started then, unless it had been stored (or a
later slot has been claimed meanwhile: only a schedule's latest slot is remembered). The clock
is injectable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from engine.cron import next_slot, previous_slot
from engine.documents.document import Workflow
from engine.errors import NodeloomError
from engine.records import WorkflowRecord
from engine.runs.service import RunService
from engine.storage.keys import now
from engine.storage.schedules import ScheduleStore
from engine.storage.tables import ScheduleRow

log = structlog.get_logger("nodeloom.schedules")

POLL_S = 0.2  # how often due schedules are looked for
ON_TIME_S = 60.0  # a slot that came longer ago than this was missed
UNSTARTED_AFTER_S = 30.0  # a claimed slot without a recorded run this long: its claimer stopped

CurrentWorkflow = Callable[[str, str | None], Awaitable[tuple[WorkflowRecord, Workflow]]]


class Scheduler:
    def __init__(
        self,
        store: ScheduleStore,
        runs: RunService,
        current_workflow: CurrentWorkflow,
        *,
        clock: Callable[[], datetime] = now,
        poll_s: float = POLL_S,
    ) -> None:
        self.store = store
        self.runs = runs
        self.current_workflow = current_workflow
        self.clock = clock
        self.poll_s = poll_s

    async def tick(self, moment: datetime | None = None) -> list[str]:
        """Start the runs of the slots due at ``moment`` (default: the clock's now) that this
        process claims; answers their run ids."""
        moment = moment or self.clock()
        started = []
        for row in await self.store.due(moment):
            run_id = await self._fire(row, moment)
            if run_id is not None:
                started.append(run_id)
        for row in await self.store.unstarted(moment - timedelta(seconds=UNSTARTED_AFTER_S)):
            run_id = await self._take_over(row, moment)
            if run_id is not None:
                started.append(run_id)
        return started

    async def _take_over(self, row: ScheduleRow, moment: datetime) -> str | None:
        """Start the run of a slot another process claimed and stopped before recording."""
        slot, marker = row.last_run_at, row.last_run_id
        if slot is None or marker is None:
            return None
        if not await self.store.claim_unstarted(row.id, marker, moment):
            return None
        stored = await self.store.run_since(row.id, slot)
        if stored is not None:  # it had started the run after all
            await self.store.ran(row.id, slot, stored)
            return None
        log.warning("slot taken over", schedule_id=row.id, slot=slot.isoformat())
        return await self._start(row, slot)

    async def _fire(self, row: ScheduleRow, moment: datetime) -> str | None:
        bound = log.bind(schedule_id=row.id, workflow_id=row.workflow_id)
        try:
            following = next_slot(row.cron, row.timezone, moment)
            latest = previous_slot(row.cron, row.timezone, following)
        except NodeloomError as exc:  # stored before a croniter change, say
            bound.error("schedule cannot be read", error=exc.detail)
            return None
        on_time = moment - latest <= timedelta(seconds=ON_TIME_S)
        runs = on_time or row.catch_up == "latest"
        if not await self.store.claim(
            row.id, row.next_run_at, following, ran=latest if runs else None, at=moment
        ):
            return None  # another server took this slot
        if not runs:
            bound.info("missed slots skipped", since=row.next_run_at.isoformat())
            return None
        return await self._start(row, latest)

    async def _start(self, row: ScheduleRow, slot: datetime) -> str | None:
        bound = log.bind(schedule_id=row.id, workflow_id=row.workflow_id)
        try:
            record, workflow = await self.current_workflow(row.workflow_id, row.owner_id)
            active = await self.runs.start(
                workflow,
                row.inputs,
                workflow_id=record.id,
                workflow_version=record.version,
                owner_id=row.owner_id,
                trigger=f"schedule:{row.id}",
            )
        except NodeloomError as exc:
            bound.warning("scheduled run not started", slot=slot.isoformat(), error=exc.detail)
            await self.store.ran(row.id, slot, None)
            return None
        await self.store.ran(row.id, slot, active.id)
        bound.info("scheduled run started", slot=slot.isoformat(), run_id=active.id)
        return active.id

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("schedules not checked")
            await asyncio.sleep(self.poll_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Scheduler]:
        task = asyncio.create_task(self._loop(), name="scheduler")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
