"""`nodeloom worker`: takes node jobs from the queue and executes them, many at a time.

A node is executed as the in-process executor does it (inputs gathered from the committed results
of its predecessors, skips, reuse, cache key, timeout, retries with backoff) and settled through
the `Scheduler`, whose fencing rejects the result of an attempt that was taken over meanwhile.
A node that waits for a person's answer is parked there instead, until the answer settles it.
A body node's body is expanded there: its instances' nodes become jobs like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from engine.distributed.bodies import Expansion
from engine.distributed.cancels import Cancelled, RunningNodes
from engine.distributed.dispatcher import Delivery, Dispatcher, NodeJob
from engine.distributed.plans import RunSpecs
from engine.distributed.reaper import application_name, end_stalled_sessions
from engine.distributed.scheduler import Scheduler
from engine.documents.plan import PlanNode
from engine.errors import NodeFailure, NodeWaits, NotFound, describe
from engine.execution.bodies import NO_WAITS_INSIDE, BodyRun, first_instances, reusable_instances
from engine.execution.lifecycle import (
    NodeCancelled,
    NodeLost,
    Prepared,
    RunScope,
    key_if_ready,
    parked,
    settle,
)
from engine.execution.results import NodeState
from engine.nodes.body import BodyNode
from engine.nodes.registry import NodeRegistry
from engine.settings import MAX_ITEMS
from engine.storage.database import Database, asyncpg_dsn
from engine.storage.keys import now
from engine.storage.repository import Store

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = [
    "CANCEL_POLL_S",
    "CONNECTION_ERRORS",
    "TOKEN_FLUSH_S",
    "Worker",
    "WorkerAttempts",
    "session_settings",
    "worker_name",
]

log = structlog.get_logger("nodeloom.worker")
T = TypeVar("T")
# How often a worker asks whether the runs it works on were cancelled: the notification it
# LISTENs for may be missed while its connection is down.
CANCEL_POLL_S = 0.5
TOKEN_FLUSH_S = 0.2  # how often streamed tokens are published while a node runs
# What a database that went away raises: the worker connects again rather than stopping.
CONNECTION_ERRORS = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DBAPIError,
)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def session_settings(lease_timeout_s: float, worker: str | None = None) -> dict[str, str]:
    """PostgreSQL settings of a worker's connections: a worker frozen inside a transaction must
    not keep the run's row locked past its lease, so the server ends such a session; the name
    lets other workers find sessions of this one that stall them (engine/distributed/reaper).
    No JIT: its compiling costs more than the short statements here take, and it made the type
    lookups asyncpg does on each new connection take milliseconds."""
    return {
        "idle_in_transaction_session_timeout": str(int(lease_timeout_s * 1000)),
        "application_name": application_name(worker or worker_name()),
        "jit": "off",
    }


async def _reconnecting(read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, once more when its connection turned out to be dropped: connection pools
    here do not ping a connection before handing it out, and replace it once it failed."""
    try:
        return await read()
    except CONNECTION_ERRORS:
        return await read()


class Worker:
    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        registry: NodeRegistry,
        *,
        concurrency: int = 8,
        lease_timeout_s: float = 30.0,
        workspace: Path | None = None,
        models: ModelService | None = None,
        max_items: int = MAX_ITEMS,
    ) -> None:
        settings = session_settings(lease_timeout_s)

        def configure(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            # On the driver connection itself: through the adapter, the SET would be part of a
            # transaction that the pool rolls back.
            for name, value in settings.items():
                dbapi_connection.run_async(
                    lambda raw, n=name, v=value: raw.execute(f"SET {n} = '{v}'")
                )

        event.listen(database.engine.sync_engine, "connect", configure)
        self.scheduler = Scheduler(database, dispatcher, server_settings=settings)
        self.dispatcher = dispatcher
        self.workspace = workspace or Path("workspace")
        self.models = models
        self.specs = RunSpecs(Store(database), registry, workspace=self.workspace, models=models)
        self.concurrency = concurrency
        self.max_items = max_items  # the most instances a body node may run
        self.lease_timeout_s = lease_timeout_s
        self.name = worker_name()
        self.running = RunningNodes()
        self._streams: dict[NodeJob, list[str]] = {}  # tokens not published yet

    async def serve(self, stop: asyncio.Event) -> None:
        """Execute node jobs until ``stop`` is set; a lost database connection is reconnected."""
        helpers = [
            asyncio.create_task(
                self.running.listen(
                    asyncpg_dsn(self.scheduler.database.engine.url),
                    stop,
                    CANCEL_POLL_S,
                    CONNECTION_ERRORS,
                )
            ),
            asyncio.create_task(self._every(CANCEL_POLL_S, self._poll_cancels, stop)),
            asyncio.create_task(self._every(TOKEN_FLUSH_S, self._flush_tokens, stop)),
            asyncio.create_task(self._every(self.lease_timeout_s, self._sweep, stop)),
            # Apart from the sweep: a sweep can itself wait on the locks of a stalled session.
            asyncio.create_task(self._every(self.lease_timeout_s / 2, self._end_stalled, stop)),
        ]
        delay = 0.5
        log.info("worker started", worker=self.name, concurrency=self.concurrency)
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self.scheduler.open(connections=self.concurrency + 1)
                    await self.dispatcher.consume(
                        self.handle,
                        concurrency=self.concurrency,
                        lease_timeout_s=self.lease_timeout_s,
                        stop=stop,
                    )
                except CONNECTION_ERRORS as exc:
                    log.warning("database connection lost; reconnecting", error=describe(exc))
                except Exception as exc:  # a worker stays up: its queue consumer starts again
                    log.exception("queue consumer stopped; starting it again", error=describe(exc))
                if time.monotonic() - started > 10:
                    delay = 0.5
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10.0)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.scheduler.close()
            log.info("worker stopped", worker=self.name)

    async def _every(
        self, interval: float, work: Callable[[], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            try:
                await work()
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again
                log.warning("background check failed", error=describe(exc))

    async def _poll_cancels(self) -> None:
        for run_id in await self.scheduler.cancelled_among(list(self.running.runs)):
            self.running.cancel(run_id)

    async def _flush_tokens(self) -> None:
        for job, tokens in list(self._streams.items()):
            if tokens:
                texts = _drain(tokens)
                await self.scheduler.publish_tokens(job, texts)

    async def _end_stalled(self) -> None:
        ended = await end_stalled_sessions(self.scheduler.database, self.name, self.lease_timeout_s)
        if ended:
            log.warning("ended stalled sessions of other workers", sessions=ended)

    async def _sweep(self) -> None:
        requeued = await self.scheduler.requeue_lost(2 * self.lease_timeout_s)
        if requeued:
            log.warning("queued nodes whose job was lost again", nodes=requeued)

    # -- one node -------------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> bool:
        """Execute the delivered node and commit its result; True when its job is finished
        with, False when it should be delivered again (its result could not be committed) or
        belongs to another worker now."""
        job = delivery.job
        bound = log.bind(run_id=job.run_id, node_id=job.node_id, worker=self.name)
        try:
            spec = await _reconnecting(lambda: self.specs.get(job.run_id))
        except NotFound:
            return True  # the run was deleted
        try:
            node = spec.nodes[job.node_id]
        except KeyError:
            return True  # not a node of the run's plan: nothing to do
        info, states = await _reconnecting(lambda: self.scheduler.look(job, node.predecessors))
        if info is None or info.status not in ("queued", "running"):
            return True  # settled already: a second delivery
        scope = spec.scope
        if "/" in job.node_id:  # inside a body: its instance's inputs, for an `input` node
            inputs = None
            if node.node_type.role == "input":
                inputs = await _reconnecting(
                    lambda: self.scheduler.instance_inputs(job.run_id, job.node_id)
                )
            scope = spec.scope_at(job.node_id, inputs)
        bound = bound.bind(workflow_id=spec.workflow_id)
        tokens = self._streams[job] = []
        attempts = WorkerAttempts(self, job, info.attempt, tokens)
        try:
            state = NodeState()
            question: dict[str, Any] | None = None  # what the node asks, when it waits
            expansion: Expansion | None = None  # a body node's body to run
            try:
                if info.cancel_requested:
                    state.cancel(now())
                else:
                    prepared = await settle(
                        node,
                        state,
                        scope,
                        states,
                        attempts=attempts,
                        emit_token=tokens.append,
                    )
                    if prepared is not None:
                        expansion = await self._expansion(node, state, prepared, scope)
            except NodeWaits as waits:
                if "/" in job.node_id:
                    state.fail(NO_WAITS_INSIDE, now())
                else:
                    question = parked(node, state, waits.question)
            except NodeLost:
                bound.warning("node taken over by another worker")
                return False
            finally:
                delivery.executed()
            await asyncio.sleep(0)  # the consumer asks for the next job before this settles
            committed: bool | None = None
            with contextlib.suppress(*CONNECTION_ERRORS):
                if expansion is not None:
                    committed = await self.scheduler.expand(
                        job, info.attempt, state, expansion, spec=spec
                    )
                elif question is None:
                    committed = await self.scheduler.settle(
                        job,
                        state,
                        attempts.attempt,
                        plan=spec.plan,
                        spec=spec,
                        tokens=_drain(tokens),
                    )
                else:
                    committed = await self.scheduler.park(
                        job,
                        state,
                        attempts.attempt,
                        question,
                        plan=spec.plan,
                        tokens=_drain(tokens),
                    )
            if committed is None:
                bound.warning("result not committed: the database connection was lost")
            elif committed:
                bound.debug("node settled", status=state.status, attempt=attempts.attempt)
            else:
                bound.warning("result rejected: the node was taken over", attempt=attempts.attempt)
            return bool(committed)
        finally:
            self._streams.pop(job, None)

    async def _expansion(
        self, node: PlanNode, state: NodeState, prepared: Prepared, scope: RunScope
    ) -> Expansion | None:
        """A body node's first instances, with those a rerun takes over whole (see
        `reusable_instances`); None when the node fails on its inputs (in ``state``)."""
        instance = prepared.instance
        assert isinstance(instance, BodyNode)
        try:
            first = first_instances(node, instance, prepared.inputs, self.max_items)
        except NodeFailure as exc:
            state.fail(exc.detail, now())
            return None
        state.status, state.started_at, state.attempt = "running", now(), 1
        taken: dict[int, dict[str, NodeState]] = {}
        if scope.reuse and not instance.sequential and node.id not in scope.force:
            run = BodyRun(
                node, state, instance=instance, inputs=prepared.inputs, first=first, scope=scope
            )
            taken = {
                index: priors
                async for index, _, priors in reusable_instances(
                    run, first, key_if_ready=key_if_ready
                )
            }
        return Expansion(instance, prepared.inputs, first, taken)


class WorkerAttempts:
    """A node's attempts on a worker (see `Attempts`): each is taken in the database, whose
    attempt number is the fencing token (``attempt``: the one the database holds for this
    worker), and announced there; a failure to retry is announced with the next take."""

    def __init__(self, worker: Worker, job: NodeJob, attempt: int, tokens: list[str]) -> None:
        self.attempt = attempt
        self._worker = worker
        self._job = job
        self._tokens = tokens
        self._failure: str | None = None

    async def begin(self, node_id: str, previous: int) -> int:
        taken = await self._worker.scheduler.take(
            self._job,
            self._worker.name,
            self.attempt,
            failure=self._failure,
            tokens=_drain(self._tokens),
        )
        if taken is None:
            raise NodeLost
        self.attempt, cancelled = taken
        self._failure = None
        if cancelled:
            raise NodeCancelled(self.attempt)
        return self.attempt

    def retrying(self, node_id: str, attempt: int, error: str) -> None:
        self._failure = error

    def run(self, work: Awaitable[T]) -> Awaitable[T]:
        return self._guarded(work)

    async def _guarded(self, work: Awaitable[T]) -> T:
        try:
            return await self._worker.running.cancellable(self._job.run_id, work)
        except Cancelled:
            raise NodeCancelled from None


def _drain(tokens: list[str]) -> list[str]:
    texts = tokens[:]
    tokens.clear()
    return texts
