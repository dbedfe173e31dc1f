"""Batch runs: every input set checked first, then one run per set, a few at a time, with the
progress (done / failed / total) readable from storage and published live.

A batch outlives the process driving it: its status and driver are stored, the driver keeps a
heartbeat, and a server that finds a running batch whose driver stopped (at start-up, and now
and then after) takes it over and goes on: items whose run was interrupted are resumed, items
never started are started, each item has one run. A cancelled batch is stored so, and no
process starts another of its items."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import structlog

from engine.documents.document import Workflow, from_builtins
from engine.documents.inputs import input_schemas, resolve_inputs
from engine.errors import BatchInputsInvalid, Conflict, InputsInvalid, NodeloomError, NotFound
from engine.records import WorkflowRecord
from engine.runs.launch import RunHandle
from engine.runs.processes import process_alive
from engine.runs.service import RunService
from engine.storage.batches import BatchRun, BatchStore, StoredBatch, stale
from server.live import Channels

log = structlog.get_logger("nodeloom.batches")

INDEX_INPUT = "index"  # an input of this name gets each item's position in the batch
MAX_ITEMS = 1000
SETTLED = ("succeeded", "failed", "cancelled")  # an item whose run ended for good
POLL_S = 0.5  # how often a run executing elsewhere (or waiting) is looked at


class Progress(msgspec.Struct, kw_only=True):
    """How far a batch has got: ``done`` runs have finished, ``failed`` of them did not succeed."""

    batch_id: str
    status: str  # running, finished, cancelled, interrupted
    total: int
    done: int
    failed: int
    running: int
    pending: int


class Batch(msgspec.Struct, kw_only=True):
    id: str
    workflow_id: str
    workflow_version: int
    progress: Progress
    runs: list[BatchRun]


class Batches:
    """The batches this process drives, and their live progress channels."""

    def __init__(
        self,
        runs: RunService,
        store: BatchStore,
        *,
        parallelism: int,
        lease_timeout_s: float = 30.0,
    ) -> None:
        self.runs = runs
        self.store = store
        self.parallelism = parallelism
        self.lease_timeout_s = lease_timeout_s
        self.process = runs.process
        self.channels: Channels[Progress] = Channels()
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._driven: dict[str, StoredBatch] = {}
        self._cancelled: set[str] = set()
        self._handles: dict[str, RunHandle] = {}  # the runs executing, by run id
        self._closing = False
        self._keeper: asyncio.Task[None] | None = None

    def items(self, workflow: Workflow, given: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each item's inputs, checked (every bad item reported), with ``index`` filled in when
        the workflow has an input of that name."""
        plan = self.runs.plan(workflow)
        has_index = INDEX_INPUT in input_schemas(plan)
        items, invalid = [], []
        for position, inputs in enumerate(given):
            item = {INDEX_INPUT: position, **inputs} if has_index else dict(inputs)
            try:
                resolve_inputs(plan, item)
            except InputsInvalid as exc:
                invalid.append((position, exc.detail))
            items.append(item)
        if invalid:
            raise BatchInputsInvalid(invalid, len(given))
        return items

    async def start(
        self,
        record: WorkflowRecord,
        workflow: Workflow,
        items: list[dict[str, Any]],
        *,
        owner_id: str | None,
    ) -> StoredBatch:
        stored = await self.store.create(
            record.id, record.version, items, owner_id=owner_id, driver=self.process
        )
        self._launch(stored, workflow)
        return stored

    def _launch(self, stored: StoredBatch, workflow: Workflow) -> None:
        self.channels.open(stored.id)
        self._driven[stored.id] = stored
        self._drivers[stored.id] = asyncio.create_task(
            self._drive(stored, workflow), name=f"batch {stored.id}"
        )

    async def wait(self, batch_id: str) -> None:
        driver = self._drivers.get(batch_id)
        if driver is not None:
            await asyncio.shield(driver)

    async def get(self, batch_id: str, *, owner_id: str | None) -> Batch:
        stored = await self.store.get(batch_id, owner_id=owner_id)
        return Batch(
            id=stored.id,
            workflow_id=stored.workflow_id,
            workflow_version=stored.workflow_version,
            progress=self._progress(stored),
            runs=stored.runs,
        )

    async def cancel(self, batch_id: str, *, owner_id: str | None) -> Batch:
        """Stored as cancelled (no process starts another item), its runs cancelled: here, or
        by the process driving it when it next looks."""
        stored = await self.store.get(batch_id, owner_id=owner_id)
        if await self.store.set_status(batch_id, "cancelled") or stored.status == "cancelled":
            self._cancelled.add(batch_id)
        self._cancel_handles(stored)
        await self.wait(batch_id)
        return await self.get(batch_id, owner_id=owner_id)

    def _cancel_handles(self, stored: StoredBatch) -> None:
        runs = self._driven.get(stored.id, stored).runs
        for run in runs:
            handle = self._handles.get(run.run_id or "")
            if handle is not None:
                handle.cancel()

    # -- going on after a restart -------------------------------------------------------------

    async def open(self) -> list[str]:
        """Take over the batches left by processes that stopped, and keep doing so (and this
        process's heartbeat) until `stop`. Answers the batches taken over now."""
        taken = await self.recover()
        self._keeper = asyncio.create_task(self._keep(), name="batch keeper")
        return taken

    async def recover(self) -> list[str]:
        taken = []
        for batch_id, driver, heartbeat_at in await self.store.running():
            if driver == self.process or batch_id in self._drivers:
                continue
            if process_alive(driver) and not stale(heartbeat_at, self.lease_timeout_s):
                continue
            if not await self.store.take_over(batch_id, driver, self.process):
                continue  # another server took it
            try:
                stored = await self.store.get(batch_id)
                workflow = await self._workflow(stored)
            except NodeloomError as exc:
                log.warning("batch not taken over", batch_id=batch_id, error=exc.detail)
                continue
            log.info("batch taken over", batch_id=batch_id, previous=driver)
            self._launch(stored, workflow)
            taken.append(batch_id)
        return taken

    async def _workflow(self, stored: StoredBatch) -> Workflow:
        record = await self.runs.store.get_workflow(
            stored.workflow_id, stored.workflow_version, owner_id=stored.owner_id
        )
        return await self.runs.with_saved_bodies(
            from_builtins(record.document),
            owner_id=stored.owner_id,
            workflow_id=stored.workflow_id,
        )

    async def _keep(self) -> None:
        interval = max(self.lease_timeout_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                driven = list(self._driven)
                if driven:
                    await self.store.heartbeat(driven, self.process)
                    for batch_id, status in (await self.store.statuses(driven)).items():
                        if status == "cancelled" and batch_id not in self._cancelled:
                            self._cancelled.add(batch_id)  # cancelled through another server
                            self._cancel_handles(self._driven[batch_id])
                await self.recover()
            except Exception:
                log.exception("batches not kept")

    def stop(self) -> None:
        """Start no more item runs: the process is stopping (its batches go on elsewhere or
        after a restart). Call before the run service closes, then `close`."""
        self._closing = True
        if self._keeper is not None:
            self._keeper.cancel()

    async def close(self) -> None:
        self.stop()
        drivers = [*self._drivers.values(), *([self._keeper] if self._keeper else [])]
        await asyncio.gather(*drivers, return_exceptions=True)

    # -- driving ----------------------------------------------------------------------------------

    def _progress(self, stored: StoredBatch) -> Progress:
        statuses = [run.status for run in stored.runs]
        done = sum(status in SETTLED for status in statuses)
        pending = statuses.count("pending")
        running = len(statuses) - done - pending
        if stored.id in self._cancelled or stored.status == "cancelled":
            status = "cancelled"
        elif done == len(statuses):
            status = "finished"
        elif stored.id in self._drivers or (
            stored.status == "running"
            and stored.driver != self.process
            and process_alive(stored.driver)
            and not stale(stored.heartbeat_at, self.lease_timeout_s)
        ):
            status = "running"
        else:
            status = "interrupted"  # its driver was in a process that stopped
        return Progress(
            batch_id=stored.id,
            status=status,
            total=len(statuses),
            done=done,
            failed=sum(status in SETTLED and status != "succeeded" for status in statuses),
            running=running,
            pending=pending,
        )

    def _stopped(self, batch_id: str) -> bool:
        return self._closing or batch_id in self._cancelled

    async def _cancelled_elsewhere(self, batch_id: str) -> bool:
        if (await self.store.statuses([batch_id])).get(batch_id) == "cancelled":
            self._cancelled.add(batch_id)
        return self._stopped(batch_id)

    async def _drive(self, stored: StoredBatch, workflow: Workflow) -> None:
        limit = asyncio.Semaphore(self.parallelism)
        bound = log.bind(batch_id=stored.id, workflow_id=stored.workflow_id)
        owner_id = stored.owner_id

        async def one(run: BatchRun) -> None:
            if run.status in SETTLED:
                return
            async with limit:
                if self._stopped(stored.id) or await self._cancelled_elsewhere(stored.id):
                    return
                if run.run_id is None:
                    try:
                        active = await self.runs.start(
                            workflow,
                            run.inputs,
                            workflow_id=stored.workflow_id,
                            workflow_version=stored.workflow_version,
                            owner_id=owner_id,
                            trigger=f"batch:{stored.id}",
                        )
                    except NodeloomError as exc:
                        bound.warning("batch item not started", index=run.index, error=exc.detail)
                        run.status, run.error = "failed", exc.detail
                        return
                    run.run_id, run.status = active.id, "running"
                    await self.store.add_run(stored.id, run.index, active.id)
                    self._publish(stored)
                    await self._follow(run, active)
                await self._settle(stored.id, run)
                self._publish(stored)

        try:
            await self._adopt_unrecorded(stored, workflow)
            await asyncio.gather(*(one(run) for run in stored.runs))
            if all(run.status in SETTLED for run in stored.runs):
                await self.store.set_status(stored.id, "done")
                bound.info("batch finished", total=len(stored.runs))
        finally:
            self._drivers.pop(stored.id, None)
            self._driven.pop(stored.id, None)
            self._publish(stored)
            self.channels.drop(stored.id)

    async def _adopt_unrecorded(self, stored: StoredBatch, workflow: Workflow) -> None:
        """Runs a stopped process started for items without recording them: each is given to
        the first unstarted item with its inputs, so that item is not run again."""
        unrecorded = await self.store.unrecorded_runs(stored.id)
        if not unrecorded:
            return
        plan = self.runs.plan(workflow)
        for run in stored.runs:
            if run.run_id is not None:
                continue
            wanted = resolve_inputs(plan, run.inputs)
            for position, (run_id, inputs) in enumerate(unrecorded):
                if inputs == wanted:
                    del unrecorded[position]
                    await self.store.add_run(stored.id, run.index, run_id)
                    record = await self.runs.get(run_id)
                    run.run_id, run.status = run_id, record.status
                    break

    async def _follow(self, run: BatchRun, active: RunHandle) -> None:
        self._handles[active.id] = active
        try:
            with contextlib.suppress(asyncio.CancelledError):
                record = await active.wait()
                run.status, run.outputs, run.error = record.status, record.outputs, record.error
        finally:
            self._handles.pop(active.id, None)

    async def _settle(self, batch_id: str, run: BatchRun) -> None:
        """Until the item's run has ended for good: an interrupted run is resumed here, one
        executing elsewhere (or waiting for a person) is looked at now and then."""
        assert run.run_id is not None
        while run.status not in SETTLED and not self._stopped(batch_id):
            if run.status == "interrupted":
                try:
                    active = await self.runs.resume(run.run_id)
                except (Conflict, NotFound):
                    pass  # resumed elsewhere meanwhile
                else:
                    run.status = "running"
                    await self._follow(run, active)
                    continue
            await asyncio.sleep(POLL_S)
            record = await self.runs.get(run.run_id)
            run.status, run.outputs, run.error = record.status, record.outputs, record.error

    def _publish(self, stored: StoredBatch) -> None:
        channel = self.channels.get(stored.id)
        if channel is not None:
            channel.publish(self._progress(stored))
