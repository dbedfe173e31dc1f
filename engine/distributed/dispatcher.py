"""What distributed execution needs from a job queue, so that the queue could be replaced.

A job names one node of one run. Jobs are queued inside the caller's database transaction (on
its asyncpg connection), so that a node's result and its successors' jobs commit together or not
at all. Delivery is at least once: a job whose lease lapses (its worker died or froze) is
delivered again, and the fencing in `engine.distributed.scheduler` makes sure only one result
per node is committed; a consumer removes a job once its handler is finished with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import asyncpg  # type: ignore[import-untyped]
import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Delivery", "Dispatcher", "Handler", "NodeJob"]


class NodeJob(msgspec.Struct, frozen=True):
    """Execute node ``node_id`` of run ``run_id``."""

    run_id: str
    node_id: str

    @property
    def key(self) -> str:
        """At most one live job per key: a node queued twice is queued once."""
        return f"{self.run_id}:{self.node_id}"


class Delivery(Protocol):
    """A job handed to a consumer's handler."""

    @property
    def job(self) -> NodeJob: ...

    def executed(self) -> None:
        """The node no longer executes (its result is being committed): the consumer may
        take its next job already."""
        ...


# True when the job is finished with (the consumer removes it), False to have it delivered again
# once its lease lapses.
Handler = Callable[[Delivery], Awaitable[bool]]


class Dispatcher(Protocol):
    async def enqueue(self, connection: asyncpg.Connection, jobs: Sequence[NodeJob]) -> None:
        """Queue ``jobs`` in the transaction open on ``connection``; a job whose key is
        already live is left as it is."""
        ...

    async def complete(
        self, connection: asyncpg.Connection, deliveries: Sequence[Delivery]
    ) -> None:
        """Remove delivered jobs."""
        ...

    async def consume(
        self,
        handler: Handler,
        *,
        concurrency: int,
        lease_timeout_s: float,
        stop: asyncio.Event,
    ) -> None:
        """Deliver jobs to ``handler``, at most ``concurrency`` executing at a time, keeping a
        lease on each until it is removed, until ``stop`` is set; raises when the database
        connection is lost."""
        ...

    async def live_jobs(self, connection: AsyncConnection) -> int:
        """Jobs queued or being executed."""
        ...
