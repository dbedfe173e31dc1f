"""Following the events of runs that execute on workers: stored events first, then live ones.

Workers commit each event to the `events` table and, in the same transaction, NOTIFY
``nodeloom_events`` with the run id. One LISTEN connection per process wakes every follower of
that run, which reads what is new from the table: no broker, and nothing is missed between the
replay and the live part (a follower also looks again every few seconds, in case a notification
was lost with a connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from engine.distributed.scheduler import EVENTS_CHANNEL
from engine.execution.events import AnyEvent, RunFinished, decode_event
from engine.storage.database import Database, asyncpg_dsn
from engine.storage.repository import Store

__all__ = ["RECHECK_S", "EventFeed", "follow"]

log = structlog.get_logger("nodeloom.events")
RECHECK_S = 2.0  # a follower reads the table at least this often
_FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
_READ = "SELECT seq, data FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq"


class EventFeed:
    """One process's LISTEN connection, shared by all its followers."""

    def __init__(self, database: Database) -> None:
        self.store = Store(database)
        self._dsn = asyncpg_dsn(database.engine.url)
        self._connection: Any = None
        self._connecting = asyncio.Lock()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._readers: Any = None  # an asyncpg pool: a follower reads often, and little

    async def _read(self, run_id: str, after: int) -> list[tuple[int, str]]:
        if self._readers is None:
            async with self._connecting:
                if self._readers is None:
                    self._readers = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=4, server_settings={"jit": "off"}
                    )
        rows = await self._readers.fetch(_READ, run_id, after)
        return [(seq, data) for seq, data in rows]

    async def follow(self, run_id: str, after_seq: int = 0) -> AsyncIterator[AnyEvent]:
        """The run's events after ``after_seq`` in order, ending with `RunFinished`."""
        wake = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(wake)
        try:
            await self._listen()
            last = after_seq
            while True:
                wake.clear()
                rows = await self._read(run_id, last)
                for seq, data in rows:
                    event = decode_event(data.encode())
                    last = seq
                    yield event
                    if isinstance(event, RunFinished):
                        return
                if rows:
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), RECHECK_S)
                except TimeoutError:
                    await self._listen()
                    row = await self.store.run_row(run_id)
                    if row.status in _FINISHED and not await self._read(run_id, last):
                        return  # finished without a run.finished event (interrupted)
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                waiters.discard(wake)
                if not waiters:
                    del self._waiters[run_id]

    async def _listen(self) -> None:
        async with self._connecting:
            if self._connection is not None and not self._connection.is_closed():
                return
            try:
                self._connection = await asyncpg.connect(self._dsn)
                await self._connection.add_listener(EVENTS_CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError) as exc:
                self._connection = None
                log.warning("cannot LISTEN for run events; reading them periodically", error=exc)
                return
            for waiters in self._waiters.values():  # something may have been missed
                for wake in waiters:
                    wake.set()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        for wake in self._waiters.get(payload, ()):
            wake.set()

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=2)
            self._connection = None
        if self._readers is not None:
            self._readers.terminate()
            self._readers = None


async def follow(database_url: str, run_id: str, after_seq: int = 0) -> AsyncIterator[AnyEvent]:
    """A run's events after ``after_seq``: those stored, then live ones until it finishes."""
    database = await Database.connect(database_url, migrate=False)
    feed = EventFeed(database)
    try:
        async for event in feed.follow(run_id, after_seq):
            yield event
    finally:
        await feed.close()
        await database.close()
