"""The `Dispatcher` on pgqueuer (pinned in pyproject.toml), its tables in their own schema.

pgqueuer claims jobs with ``FOR UPDATE SKIP LOCKED``, wakes workers with LISTEN/NOTIFY and keeps
a heartbeat on every job being executed; a job whose heartbeat is older than the lease timeout
is picked again by the next dequeue. Jobs are queued and removed through pgqueuer's own queries
on the asyncpg connection under the caller's SQLAlchemy transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import msgspec
from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.domain.models import Job
from pgqueuer.domain.settings import DBSettings
from pgqueuer.domain.types import Channel
from pgqueuer.ports.driver import Driver
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.distributed.dispatcher import Delivery, Handler, NodeJob

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


def asyncpg_dsn(url: URL) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as the DSN asyncpg itself takes."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class PgDelivery:
    job: NodeJob
    raw: Job


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

    async def _on(self, connection: AsyncConnection) -> Queries:
        """pgqueuer's queries on the asyncpg connection under ``connection``'s transaction."""
        raw = await connection.get_raw_connection()
        driver_connection: asyncpg.Connection = raw.driver_connection
        if not driver_connection.is_in_transaction():
            # SQLAlchemy begins the asyncpg transaction with its first statement.
            raise RuntimeError("queue writes need a transaction that has run a statement")
        return self._queries(AsyncpgDriver(driver_connection))

    async def enqueue(self, connection: AsyncConnection, jobs: Sequence[NodeJob]) -> None:
        if not jobs:
            return
        queries = await self._on(connection)
        await queries.enqueue(
            [ENTRYPOINT] * len(jobs),
            [_encode_job(job) for job in jobs],
            [0] * len(jobs),
            dedupe_key=[job.key for job in jobs],
            on_conflict="skip",
        )

    async def complete(self, connection: AsyncConnection, delivery: Delivery) -> None:
        assert isinstance(delivery, PgDelivery)
        queries = await self._on(connection)
        await queries.log_jobs([(delivery.raw, "successful", None)])

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
        # The listener holds one connection; dequeues, heartbeats and logs share the others.
        pool = await asyncpg.create_pool(
            self.dsn, min_size=2, max_size=4, server_settings=dict(self.server_settings)
        )
        try:
            manager = QueueManager(
                self._queries(AsyncpgPoolDriver(pool)), channel=Channel(self._settings.channel)
            )

            async def execute(job: Job) -> None:
                assert job.payload is not None
                await handler(PgDelivery(_decode_job(job.payload), job))

            manager.entrypoint(ENTRYPOINT, accepts_context=False)(execute)
            batch = max(1, concurrency // 2)

            async def relay_stop() -> None:
                await stop.wait()
                manager.shutdown.set()

            relay = asyncio.create_task(relay_stop())
            try:
                await manager.run(
                    dequeue_timeout=timedelta(seconds=max(lease_timeout_s, 1.0)),
                    batch_size=batch,
                    max_concurrent_tasks=max(concurrency, 2 * batch),
                    heartbeat_timeout=timedelta(seconds=lease_timeout_s),
                    shutdown_on_listener_failure=True,
                )
            finally:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
            if not stop.is_set():
                raise ConnectionError("the queue's LISTEN connection stopped answering")
        finally:
            pool.terminate()
