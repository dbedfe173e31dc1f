"""The `Dispatcher` on pgqueuer (pinned in pyproject.toml), its tables in their own schema.

pgqueuer claims jobs with ``FOR UPDATE SKIP LOCKED``, announces changes to the queue with
LISTEN/NOTIFY and picks again a job whose heartbeat is older than the lease timeout. Jobs are
queued and removed through pgqueuer's own queries on the caller's asyncpg connection, in its
transaction. A worker takes jobs through pgqueuer's queries too, with a loop of ours
(`_Consumer`) instead of pgqueuer's `QueueManager`, which asks for jobs on every change to the
queue even while all its slots are taken and otherwise polls every 100 ms: with several
workers on a busy queue, those queries were most of the database's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import msgspec
import structlog
from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.domain.models import Job
from pgqueuer.domain.settings import DBSettings
from pgqueuer.domain.types import Channel, JobId, QueueEntrypoint, QueueManagerId
from pgqueuer.ports.driver import Driver
from pgqueuer.ports.repository import EntrypointExecutionParameter
from pgqueuer.queries import Queries
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.distributed.dispatcher import Delivery, Handler, NodeJob

__all__ = [
    "ENTRYPOINT",
    "QUEUE_SCHEMA",
    "REMOVE_AFTER_S",
    "PgDelivery",
    "PgQueuerDispatcher",
    "PooledConnection",
    "install_sql",
    "queue_settings",
    "uninstall_sql",
]

log = structlog.get_logger("nodeloom.queue")
_LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
REMOVE_AFTER_S = 0.05  # how long a finished job waits to be removed with others
QUEUE_SCHEMA = "nodeloom_queue"
ENTRYPOINT = "nodeloom.node"
_decode_job = msgspec.json.Decoder(NodeJob).decode
_encode_job = msgspec.json.Encoder().encode


@functools.cache
def queue_settings() -> DBSettings:
    """pgqueuer's object names: its default names, in the ``nodeloom_queue`` schema."""
    return DBSettings(db_schema=QUEUE_SCHEMA, prefix="", channel=Channel("nodeloom_queue"))


def install_sql() -> str:
    """The DDL creating pgqueuer's schema, tables, types and triggers (`pgq install`)."""
    return QueryBuilderEnvironment(queue_settings()).build_install_query(create_schema=True)


def uninstall_sql() -> str:
    return QueryBuilderEnvironment(queue_settings()).build_uninstall_query()


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection of a pool whose users end their transactions and set nothing else on the
    session: nothing is reset when it goes back to the pool, which saves a round trip."""

    def get_reset_query(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class PgDelivery:
    job: NodeJob
    raw: Job
    on_executed: Callable[[], None] = lambda: None

    def executed(self) -> None:
        self.on_executed()


class PgQueuerDispatcher:
    """Node jobs on pgqueuer. ``dsn`` is needed only to consume."""

    def __init__(
        self, dsn: str | None = None, server_settings: dict[str, str] | None = None
    ) -> None:
        self.dsn = dsn
        self.server_settings = server_settings or {}  # of the connections that consume
        self._settings = queue_settings()
        self._qbe = QueryBuilderEnvironment(self._settings)
        self._qbq = QueryQueueBuilder(self._settings)
        self._qbs = QuerySchedulerBuilder(self._settings)

    def _queries(self, driver: Driver) -> Queries:
        return Queries(driver, qbe=self._qbe, qbq=self._qbq, qbs=self._qbs)

    async def enqueue(self, connection: asyncpg.Connection, jobs: Sequence[NodeJob]) -> None:
        if not jobs:
            return
        queries = self._queries(AsyncpgDriver(connection))
        await queries.enqueue(
            [ENTRYPOINT] * len(jobs),
            [_encode_job(job) for job in jobs],
            [0] * len(jobs),
            dedupe_key=[job.key for job in jobs],
            on_conflict="skip",
        )

    async def complete(
        self, connection: asyncpg.Connection, deliveries: Sequence[Delivery]
    ) -> None:
        jobs = [delivery.raw for delivery in deliveries if isinstance(delivery, PgDelivery)]
        await _remove(self._queries(AsyncpgDriver(connection)), jobs)

    async def live_jobs(self, connection: AsyncConnection) -> int:
        table = self._settings.qualified.queue_table
        found = await connection.scalar(
            text(
                f"SELECT count(*) FROM {table} "  # noqa: S608 - a validated identifier
                "WHERE entrypoint = :entrypoint AND status IN ('queued', 'picked')"
            ),
            {"entrypoint": ENTRYPOINT},
        )
        return int(found or 0)

    async def consume(
        self,
        handler: Handler,
        *,
        concurrency: int,
        lease_timeout_s: float,
        stop: asyncio.Event,
    ) -> None:
        if self.dsn is None:
            raise RuntimeError("PgQueuerDispatcher needs a DSN to consume jobs")
        settings = dict(self.server_settings)
        listener = await asyncpg.connect(self.dsn, server_settings=settings)
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=2,
            # pgqueuer's dequeue is planned once per connection rather than on every call.
            server_settings={**settings, "plan_cache_mode": "force_generic_plan"},
            connection_class=PooledConnection,
        )
        consumer = _Consumer(
            self._queries(AsyncpgPoolDriver(pool)),
            handler,
            concurrency=concurrency,
            lease=timedelta(seconds=lease_timeout_s),
        )
        try:
            await listener.add_listener(self._settings.channel, consumer.notified)
            listener.add_termination_listener(consumer.lost)
            await consumer.run(stop, listener)
        finally:
            listener.terminate()
            pool.terminate()


async def _remove(queries: Queries, jobs: Sequence[Job]) -> None:
    """Move finished jobs from the queue to pgqueuer's log."""
    if jobs:
        await queries.log_jobs([(job, "successful", None) for job in jobs])


def _operation(payload: str) -> str | None:
    """The ``operation`` of a pgqueuer ``table_changed_event`` notification."""
    try:
        found = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    return found.get("operation") if isinstance(found, dict) else None


class _Consumer:
    """Takes jobs with pgqueuer's dequeue (``FOR UPDATE SKIP LOCKED``; a picked job whose
    heartbeat is older than the lease is picked again) while it has free slots, and keeps the
    heartbeat of the jobs it runs. A job holds one of its slots while its node executes, not while
    the result is committed. It looks for jobs when pgqueuer's trigger announces new ones, when
    one of its slots frees, and every quarter lease (stale jobs announce nothing); never while
    all its slots are taken, so that a busy queue does not have every worker asking for jobs it
    cannot take."""

    def __init__(
        self, queries: Queries, handler: Handler, *, concurrency: int, lease: timedelta
    ) -> None:
        self.queries = queries
        self.handler = handler
        self.concurrency = concurrency
        self.lease = lease
        self.manager_id = QueueManagerId(uuid.uuid4())
        self.running: dict[JobId, asyncio.Task[bool]] = {}
        self.executing: set[JobId] = set()  # the jobs that hold a slot
        self.finished: dict[JobId, Job] = {}  # to be removed (their lease is kept till then)
        self.wake = asyncio.Event()
        self.to_remove = asyncio.Event()

    def notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        # Only new jobs are news: a job that ends here wakes this loop itself, and one that
        # ends elsewhere frees no slot here.
        if _operation(payload) == "insert":
            self.wake.set()

    def lost(self, connection: object) -> None:
        self.wake.set()  # the loop finds the listener closed

    async def run(self, stop: asyncio.Event, listener: asyncpg.Connection) -> None:
        heartbeat = asyncio.create_task(self._beat(stop))
        remover = asyncio.create_task(self._remove_finished())
        entrypoints = {
            QueueEntrypoint(ENTRYPOINT): EntrypointExecutionParameter(concurrency_limit=0)
        }
        try:
            while not stop.is_set():
                if listener.is_closed():
                    raise ConnectionError("the queue's LISTEN connection was lost")
                free = self.concurrency - len(self.executing)
                jobs = []
                # News from now on is looked at again; news while every slot is taken waits
                # for a slot to free, which wakes this loop itself.
                self.wake.clear()
                if free > 0:
                    jobs = await self.queries.dequeue(
                        batch_size=free,
                        entrypoints=entrypoints,
                        queue_manager_id=self.manager_id,
                        global_concurrency_limit=None,  # `free` is this worker's budget
                        heartbeat_timeout=self.lease,
                    )
                    for job in jobs:
                        self._start(job)
                if jobs and len(jobs) == free:
                    continue  # every slot was filled: there may be more
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken(stop), self.lease.total_seconds() / 4)
        finally:
            heartbeat.cancel()
            await asyncio.gather(*self.running.values(), return_exceptions=True)
            remover.cancel()
            await asyncio.gather(heartbeat, remover, return_exceptions=True)
            with contextlib.suppress(*_LOST):
                await _remove(self.queries, list(self.finished.values()))

    async def _woken(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _start(self, job: Job) -> None:
        assert job.payload is not None

        def executed() -> None:
            if job.id in self.executing:
                self.executing.discard(job.id)
                self.wake.set()

        delivery = PgDelivery(_decode_job(job.payload), job, executed)
        task: asyncio.Task[bool] = asyncio.ensure_future(self.handler(delivery))
        self.running[job.id] = task
        self.executing.add(job.id)

        def ended(done: asyncio.Task[bool]) -> None:
            self.running.pop(job.id, None)
            executed()
            if done.cancelled():
                return
            if done.exception() is not None:
                # Its heartbeat stops: after the lease, the job is picked again.
                log.error("node job failed", job=delivery.job.key, error=repr(done.exception()))
            elif done.result():
                self.finished[job.id] = job
                self.to_remove.set()

        task.add_done_callback(ended)

    async def _remove_finished(self) -> None:
        """Remove finished jobs, many in one statement when they finish faster than that."""
        while True:
            await self.to_remove.wait()
            # Off the way of the next job's start, and more at once.
            await asyncio.sleep(REMOVE_AFTER_S)
            self.to_remove.clear()
            jobs = list(self.finished.values())
            try:
                await _remove(self.queries, jobs)
            except _LOST as exc:
                log.warning("finished jobs not removed yet", error=repr(exc))
                await asyncio.sleep(1.0)
                self.to_remove.set()
                continue
            for job in jobs:
                self.finished.pop(job.id, None)

    async def _beat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.lease.total_seconds() / 4)
            held = [*self.running, *self.finished]
            if held:
                try:
                    await self.queries.update_heartbeat(held)
                except _LOST as exc:  # tried again next time, well within the lease
                    log.warning("heartbeat not recorded", error=repr(exc))
