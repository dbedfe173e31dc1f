"""Launching runs on `nodeloom worker`s (a `Launcher`): a run is queued instead of executed
here, and followed through its events, so that listeners and `RunHandle.wait` work as they do
for runs executing in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from engine.distributed.dispatcher import Dispatcher
from engine.distributed.events import EventFeed
from engine.distributed.scheduler import Scheduler
from engine.errors import Conflict
from engine.execution.events import AnyEvent, Listener
from engine.execution.results import NodeState
from engine.execution.start import RunStart
from engine.records import RunRecord
from engine.runs.active import Answerer
from engine.runs.launch import FINISHED, RunHandle, execution_for, interrupt_all
from engine.runs.processes import QUEUE_OWNER
from engine.settings import SettingInvalid
from engine.storage.database import Database
from engine.storage.repository import Store
from engine.storage.tables import RunRow

if TYPE_CHECKING:
    from engine.documents.plan import Plan
    from engine.models import ModelService

__all__ = ["Queued", "QueuedRun"]

log = structlog.get_logger("nodeloom.runs")


class QueuedRun:
    """A run executing on workers, followed from this process through its events (a
    `RunHandle`)."""

    def __init__(
        self,
        queue: Queued,
        run_id: str,
        listeners: Sequence[Listener],
        after: int = 0,
    ) -> None:
        self.id = run_id
        self._queue = queue
        self._detached = asyncio.Event()
        self.task = asyncio.create_task(self._follow(list(listeners), after))

    async def wait(self) -> RunRecord:
        return await asyncio.shield(self.task)

    def cancel(self) -> None:
        """Stop following the run here; the workers go on with it (`Queued.cancel` is how the
        run itself is cancelled)."""
        self._detached.set()

    def interrupt(self) -> None:
        self.cancel()  # the workers go on with it

    def answer(self, node_id: str, make: Answerer) -> bool | None:
        return None  # its waits are settled on the queue (`Queued.settle_waiting`)

    def unstored(self, owner_id: str | None) -> RunRecord | None:
        return None  # its row is stored before it is queued

    async def _follow(self, listeners: list[Listener], after: int) -> RunRecord:
        relay = asyncio.create_task(_relay(self._queue.feed, self.id, listeners, after))
        detached = asyncio.create_task(self._detached.wait())
        try:
            await asyncio.wait({relay, detached}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, detached):
                task.cancel()
            await asyncio.gather(relay, detached, return_exceptions=True)
            self._queue.forget(self.id)
        if relay.done() and not relay.cancelled() and relay.exception() is not None:
            log.error("following the run failed", run_id=self.id, error=repr(relay.exception()))
        return await self._queue.store.get_run(self.id)


async def _relay(feed: EventFeed, run_id: str, listeners: list[Listener], after: int) -> None:
    async for event in feed.follow(run_id, after_seq=after):
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed", run_id=run_id)


class Queued:
    """Queues runs for `nodeloom worker`s on a PostgreSQL database. What a rerun takes over
    is found here, before it is queued: only the nodes left become jobs (their file nodes'
    keys read ``workspace``, as workers do)."""

    def __init__(
        self,
        database: Database,
        *,
        workspace: Path,
        models: ModelService | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        if database.dialect != "postgresql":
            raise SettingInvalid(
                "executing runs on workers needs a PostgreSQL database "
                f"(postgresql+asyncpg://…), not {database.dialect}"
            )
        if dispatcher is None:
            from engine.distributed.pgq import PgQueuerDispatcher  # noqa: PLC0415

            dispatcher = PgQueuerDispatcher()
        self.store = Store(database)
        self.scheduler = Scheduler(database, dispatcher)
        self.feed = EventFeed(database)
        self.workspace = workspace
        self.models = models
        self._active: dict[str, QueuedRun] = {}

    @property
    def active(self) -> Mapping[str, RunHandle]:
        return self._active

    async def launch(
        self, start: RunStart, row: RunRow, listeners: Sequence[Listener]
    ) -> RunHandle:
        execution = execution_for(
            start, listeners=(), store=None, workspace=self.workspace, models=self.models
        )
        reused = await execution.take_over()
        await self.scheduler.queue_run(start, row, reused)
        return self.attach(row.id, listeners)

    def attach(
        self, run_id: str, listeners: Sequence[Listener] = (), *, after: int = 0
    ) -> RunHandle:
        """Follow a queued run from this process, from its events after ``after`` (its `wait`
        ends when the run does, or waits)."""
        active = self._active.get(run_id)
        if active is None:
            active = self._active[run_id] = QueuedRun(self, run_id, listeners, after)
        return active

    async def settle_waiting(
        self,
        row: RunRow,
        plan: Plan,
        node_id: str,
        state: NodeState,
        listeners: Sequence[Listener],
    ) -> RunHandle:
        after = await self.scheduler.answer(row.id, node_id, state, plan=plan)
        return self.attach(row.id, listeners, after=after)

    async def cancel_waiting(self, row: RunRow, plan: Plan) -> RunRecord:
        if await self.scheduler.cancel_waiting(row.id, plan=plan):
            return await self.store.get_run(row.id)
        return await self.cancel(row.id, await self.store.run_row(row.id))  # executing again

    def forget(self, run_id: str) -> None:
        self._active.pop(run_id, None)

    async def cancel(self, run_id: str, row: RunRow | None) -> RunRecord:
        """Ask the workers to stop the run, and wait until they have."""
        if row is None or row.owner_process != QUEUE_OWNER:
            raise Conflict(f"run {run_id} is not executing on workers")
        if row.status in FINISHED:
            raise Conflict(f"run {run_id} has already finished ({row.status})")
        if not await self.scheduler.request_cancel(run_id):
            raise Conflict(f"run {run_id} is not executing on workers")
        # After the `run.finished` of a wait it may have had: followed to its end.
        return await self.attach(run_id, after=row.last_seq).wait()

    def elsewhere(self, run_id: str, after: int) -> AsyncIterator[AnyEvent]:
        return self.feed.follow(run_id, after_seq=after)

    async def settled(self) -> None:
        """Nothing: a run on workers is stored as it ends."""

    async def close(self) -> None:
        """Stop following the runs (the workers go on with them), then disconnect."""
        await interrupt_all(self._active.values())
        with contextlib.suppress(Exception):
            await self.feed.close()
        await self.scheduler.close()
