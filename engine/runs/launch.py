"""The seam between the run service and where runs execute: a `Launcher` takes a `RunStart`
(and the run's row) and answers a `RunHandle`. Two implement it: `InProcess` here, and the
queue for `nodeloom worker`s (engine/distributed/launch.py). One is picked at start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from engine.errors import Conflict
from engine.execution.events import AnyEvent, Listener, decode_event
from engine.execution.executor import DEFAULT_CONCURRENCY, DEFAULT_MAX_ITEMS, Execution
from engine.execution.start import RunStart
from engine.records import RunRecord
from engine.runs.active import ActiveRun, Answerer
from engine.runs.processes import heartbeat
from engine.settings import owner_workspace
from engine.storage.repository import Store
from engine.storage.tables import RunRow
from engine.storage.writer import ResultWriter

if TYPE_CHECKING:
    from engine.documents.plan import Plan
    from engine.execution.results import NodeState, ResultStore
    from engine.models import ModelService

__all__ = [
    "DEFERRED_START_S",
    "FINISHED",
    "POLL_S",
    "InProcess",
    "Launcher",
    "RunHandle",
    "RunObserver",
    "execution_for",
    "interrupt_all",
    "poll_events",
]

log = structlog.get_logger("nodeloom.runs")

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
# How long the row of a run whose caller waits for its end may wait to be stored with the run's
# first commit (one transaction fewer for a run that ends at once): nobody has its id meanwhile.
DEFERRED_START_S = 0.02
POLL_S = 0.25  # how often the events of a run executing in another process are read


class RunHandle(Protocol):
    """A launched run, as its caller holds it."""

    id: str
    task: asyncio.Task[RunRecord]  # ends with the run, answering it as stored

    async def wait(self) -> RunRecord: ...

    def cancel(self) -> None:
        """Stop the run here: cancel it when it executes here, else stop following it."""

    def interrupt(self) -> None:
        """Stop executing it here, to be resumed later."""

    def unstored(self, owner_id: str | None) -> RunRecord | None:
        """The run as it stands, when its row may not be stored yet (its caller waits for its
        end) and ``owner_id`` may see it; else None."""

    def answer(self, node_id: str, make: Answerer) -> bool | None:
        """Settle ``node_id``, waiting for an answer while the run goes on here, with the state
        ``make`` gives (from the plan, the node's waiting state and the run's states): True when
        done, False when the run is ending (answer it once stored), None when the node does not
        wait here."""


class RunObserver(Protocol):
    """Hears every run the service launches: its events, and its handle once launched (the
    server's live channels, say)."""

    def publish(self, event: AnyEvent) -> None: ...

    def launched(self, handle: RunHandle) -> None: ...


class Launcher(Protocol):
    """Where runs execute."""

    @property
    def active(self) -> Mapping[str, RunHandle]:
        """The runs launched here that have not ended, by id."""
        ...

    async def launch(
        self, start: RunStart, row: RunRow, listeners: Sequence[Listener]
    ) -> RunHandle:
        """Store the run (unless it is resuming: its row is stored), with what it takes over
        from earlier runs, and execute it; its events go to the ``listeners``."""
        ...

    async def cancel(self, run_id: str, row: RunRow | None) -> RunRecord:
        """Cancel a run (``row``: as stored, None when not stored yet) and wait for its end;
        `Conflict` when it is not executing here."""
        ...

    def elsewhere(self, run_id: str, after: int) -> AsyncIterator[AnyEvent]:
        """The events after ``after`` of a run executing beyond this process, until its end."""
        ...

    async def settle_waiting(
        self,
        row: RunRow,
        plan: Plan,
        node_id: str,
        state: NodeState,
        listeners: Sequence[Listener],
    ) -> RunHandle:
        """Settle a node of a run on workers that waits for an answer, with ``state`` (its
        answer, or the end of its wait), and go on with the run there (SPEC §16). `Conflict`
        when the node does not wait (another answer came first, say)."""
        ...

    async def cancel_waiting(self, row: RunRow, plan: Plan) -> RunRecord:
        """Cancel a run on workers that waits for answers, and answer it as it ended."""
        ...

    async def settled(self) -> None:
        """Wait until what runs that ended here store after their end is stored."""
        ...

    async def close(self) -> None: ...


class InProcess:
    """Runs execute in this process, their results committed by one `ResultWriter`, their
    heartbeat kept while any executes. ``finished`` hears each run that ends here (but for
    those interrupted, which go on later) with its plan and final states."""

    def __init__(
        self,
        store: Store,
        *,
        process: str,
        lease_timeout_s: float,
        workspace: Path,
        models: ModelService | None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        max_items: int = DEFAULT_MAX_ITEMS,
        finished: Callable[[RunRow, Plan, dict[str, NodeState]], None],
    ) -> None:
        self.store = store
        self.writer = ResultWriter(store.database)
        self.process = process
        self.lease_timeout_s = lease_timeout_s
        self.workspace = workspace
        self.models = models
        self.max_concurrency = max_concurrency
        self.max_items = max_items
        self._finished = finished
        self._active: dict[str, ActiveRun] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def active(self) -> Mapping[str, RunHandle]:
        return self._active

    async def launch(
        self, start: RunStart, row: RunRow, listeners: Sequence[Listener]
    ) -> RunHandle:
        execution = execution_for(
            start,
            listeners=listeners,
            store=self.writer,
            workspace=self.workspace,
            models=self.models,
            max_concurrency=self.max_concurrency,
            max_items=self.max_items,
        )
        # What it takes over is stored with its row, as references.
        reused = await execution.take_over()
        if not start.resuming:
            await self.writer.run_started(
                row,
                snapshot=start.snapshot.document if start.snapshot else None,
                reused=reused,
                defer=DEFERRED_START_S if start.caller_waits else None,
            )
        active = ActiveRun(row, execution)
        self._active[row.id] = active
        active.task = asyncio.create_task(self._drive(active))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(
                heartbeat(self.store, self.process, self._active.keys(), self.lease_timeout_s)
            )
        return active

    async def _drive(self, active: ActiveRun) -> RunRecord:
        row, execution = active.row, active.execution
        bound = log.bind(run_id=row.id, workflow_id=row.workflow_id)
        try:
            result = await execution.execute()  # which commits the run's end
            bound.info("run finished", status=result.status)
            record = active.finished(result)
            if result.status not in ("interrupted", "waiting"):  # both go on later
                self._finished(row, execution.plan, result.nodes.held)
            return record
        finally:
            self._active.pop(row.id, None)

    async def cancel(self, run_id: str, row: RunRow | None) -> RunRecord:
        active = self._active.get(run_id)
        if active is not None:
            active.cancel()
            return await active.wait()
        assert row is not None  # a run not stored yet is active here
        if row.status in FINISHED:
            raise Conflict(f"run {run_id} has already finished ({row.status})")
        raise Conflict(f"run {run_id} is executing in another process ({row.owner_process})")

    def elsewhere(self, run_id: str, after: int) -> AsyncIterator[AnyEvent]:
        return poll_events(self.store, run_id, after)

    # The waits of runs executing here are settled by resuming them (`RunService._go_on`).

    async def settle_waiting(
        self,
        row: RunRow,
        plan: Plan,
        node_id: str,
        state: NodeState,
        listeners: Sequence[Listener],
    ) -> RunHandle:
        raise _on_workers(row)

    async def cancel_waiting(self, row: RunRow, plan: Plan) -> RunRecord:
        raise _on_workers(row)

    async def settled(self) -> None:
        await self.writer.flush()

    async def close(self) -> None:
        """Stop: runs still executing are stopped and left `interrupted`, to be resumed."""
        await interrupt_all(self._active.values())
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.writer.close()


def _on_workers(row: RunRow) -> Conflict:
    return Conflict(
        f"run {row.id} executes on workers: answer or cancel it through a server that queues "
        "runs for them (NODELOOM_EXECUTION=workers)"
    )


async def interrupt_all(handles: Iterable[RunHandle]) -> None:
    """Interrupt every run and wait until each has stopped here."""
    stopping = list(handles)
    for handle in stopping:
        handle.interrupt()
    for handle in stopping:
        with contextlib.suppress(Exception):
            await handle.wait()


def execution_for(
    start: RunStart,
    *,
    listeners: Sequence[Listener],
    store: ResultStore | None,
    workspace: Path,
    models: ModelService | None,
    max_concurrency: int = DEFAULT_CONCURRENCY,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Execution:
    """The run's execution here, its file nodes in its owner's part of ``workspace``."""
    return Execution(
        start,
        listeners=listeners,
        store=store,
        workspace=owner_workspace(workspace, start.owner_id),
        models=models,
        max_concurrency=max_concurrency,
        max_items=max_items,
    )


async def poll_events(store: Store, run_id: str, after: int) -> AsyncIterator[AnyEvent]:
    """The events of a run executing in another process: what is stored, read again every
    `POLL_S` until the run is over."""
    last = after
    while True:
        row = await store.run_row(run_id)
        for _, data in await store.events(run_id, after=last):
            event = decode_event(data.encode())
            last = event.seq
            yield event
            if event.__struct_config__.tag == "run.finished":
                return
        if row.status in FINISHED:
            return
        await asyncio.sleep(POLL_S)
