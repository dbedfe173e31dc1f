"""`RunService`'s side of distributed execution: runs are queued for workers instead of executed
here, and followed through their events (so listeners and `ActiveRun.wait` work as in-process)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from engine.active import ActiveRun
from engine.distributed.dispatcher import Dispatcher
from engine.distributed.events import EventFeed
from engine.distributed.scheduler import Scheduler
from engine.errors import Conflict
from engine.events import Listener
from engine.graph import Plan
from engine.records import RunRecord
from engine.settings import SettingInvalid
from engine.storage.database import Database
from engine.storage.tables import RunRow

if TYPE_CHECKING:
    from engine.runs import RunService

log = structlog.get_logger("nodeloom.runs")


class QueuedRun(ActiveRun):
    """A run executing on workers, followed from this process through its events."""

    def __init__(
        self, service: RunService, feed: EventFeed, run_id: str, listeners: Iterable[Listener]
    ) -> None:
        # No `Execution` here: the nodes execute on workers.
        self.id = run_id
        self.row = None
        self._service = service
        self._detached = asyncio.Event()
        self.task = asyncio.create_task(self._follow(feed, list(listeners)))

    async def wait(self) -> RunRecord:
        assert self.task is not None
        return await asyncio.shield(self.task)

    def cancel(self) -> None:
        """Stop following the run here; the workers go on with it (`RunService.cancel` is how
        the run itself is cancelled)."""
        self._detached.set()

    def interrupt(self) -> None:
        self.cancel()  # the workers go on with it

    async def _follow(self, feed: EventFeed, listeners: list[Listener]) -> RunRecord:
        relay = asyncio.create_task(_relay(feed, self.id, listeners))
        detached = asyncio.create_task(self._detached.wait())
        try:
            await asyncio.wait({relay, detached}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, detached):
                task.cancel()
            await asyncio.gather(relay, detached, return_exceptions=True)
            self._service.active.pop(self.id, None)
        if relay.done() and not relay.cancelled() and relay.exception() is not None:
            log.error("following the run failed", run_id=self.id, error=repr(relay.exception()))
        return await self._service.store.get_run(self.id)


async def _relay(feed: EventFeed, run_id: str, listeners: list[Listener]) -> None:
    async for event in feed.follow(run_id):
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed", run_id=run_id)


class RunQueue:
    """Queues runs for `nodeloom worker`s on the run service's PostgreSQL database."""

    def __init__(self, database: Database, dispatcher: Dispatcher | None = None) -> None:
        if database.dialect != "postgresql":
            raise SettingInvalid(
                "executing runs on workers needs a PostgreSQL database "
                f"(postgresql+asyncpg://…), not {database.dialect}"
            )
        if dispatcher is None:
            from engine.distributed.pgq import PgQueuerDispatcher  # noqa: PLC0415

            dispatcher = PgQueuerDispatcher()
        self.scheduler = Scheduler(database, dispatcher)
        self.feed = EventFeed(database)

    async def launch(
        self,
        service: RunService,
        row: RunRow,
        plan: Plan,
        *,
        listeners: Iterable[Listener],
        insert: bool,
        document: dict[str, Any] | None,
        reused: Mapping[str, list[str]],
        reuse_from: str | None,
        force: Collection[str],
        reasons: Mapping[str, str] | None,
        done: Collection[str],
        first_seq: int,
    ) -> ActiveRun:
        await self.scheduler.queue_run(
            row,
            plan,
            insert_row=insert,
            document=document,
            reused=reused,
            done=done,
            reuse_from=reuse_from,
            force=force,
            reasons=reasons,
            first_seq=first_seq,
        )
        return self.attach(service, row.id, listeners)

    def attach(
        self, service: RunService, run_id: str, listeners: Iterable[Listener] = ()
    ) -> ActiveRun:
        """Follow a queued run from this process (its `wait` ends when the run does)."""
        active = service.active.get(run_id)
        if active is None:
            active = service.active[run_id] = QueuedRun(service, self.feed, run_id, listeners)
        return active

    async def cancel(self, service: RunService, run_id: str) -> RunRecord:
        """Ask the workers to stop the run, and wait until they have."""
        if not await self.scheduler.request_cancel(run_id):
            raise Conflict(f"run {run_id} is not executing on workers")
        return await self.attach(service, run_id).wait()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.feed.close()
        await self.scheduler.close()
