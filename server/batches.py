"""Batch runs: every input set checked first, then one run per set, a few at a time, with the
progress (done / failed / total) readable from storage and published live."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import structlog

from engine.documents.document import Workflow
from engine.documents.inputs import input_schemas, resolve_inputs
from engine.errors import BatchInputsInvalid, InputsInvalid, NodeloomError
from engine.records import WorkflowRecord
from engine.runs.launch import FINISHED, RunHandle
from engine.runs.service import RunService
from engine.storage.batches import BatchRun, BatchStore, StoredBatch
from server.live import Channels

log = structlog.get_logger("nodeloom.batches")

INDEX_INPUT = "index"  # an input of this name gets each item's position in the batch
MAX_ITEMS = 1000


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

    def __init__(self, runs: RunService, store: BatchStore, *, parallelism: int) -> None:
        self.runs = runs
        self.store = store
        self.parallelism = parallelism
        self.channels: Channels[Progress] = Channels()
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._handles: dict[str, RunHandle] = {}  # the runs executing, by run id

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
        stored = await self.store.create(record.id, record.version, items, owner_id=owner_id)
        self.channels.open(stored.id)
        self._drivers[stored.id] = asyncio.create_task(
            self._drive(stored, workflow, owner_id), name=f"batch {stored.id}"
        )
        return stored

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
        stored = await self.store.get(batch_id, owner_id=owner_id)
        self._cancelled.add(batch_id)
        for run in stored.runs:
            handle = self._handles.get(run.run_id or "")
            if handle is not None:
                handle.cancel()
        await self.wait(batch_id)
        return await self.get(batch_id, owner_id=owner_id)

    def _progress(self, stored: StoredBatch) -> Progress:
        statuses = [run.status for run in stored.runs]
        done = sum(status in FINISHED for status in statuses)
        pending = statuses.count("pending")
        running = len(statuses) - done - pending
        if stored.id in self._cancelled:
            status = "cancelled"
        elif done == len(statuses):
            status = "finished"
        elif stored.id in self._drivers:
            status = "running"
        else:
            status = "interrupted"  # its driver was in a process that stopped
        return Progress(
            batch_id=stored.id,
            status=status,
            total=len(statuses),
            done=done,
            failed=sum(status in FINISHED and status != "succeeded" for status in statuses),
            running=running,
            pending=pending,
        )

    async def _drive(self, stored: StoredBatch, workflow: Workflow, owner_id: str | None) -> None:
        limit = asyncio.Semaphore(self.parallelism)
        bound = log.bind(batch_id=stored.id, workflow_id=stored.workflow_id)

        async def one(run: BatchRun) -> None:
            async with limit:
                if stored.id in self._cancelled:
                    return
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
                self._handles[active.id] = active
                try:
                    await self.store.add_run(stored.id, run.index, active.id)
                    self._publish(stored)
                    await self._finish(run, active)
                finally:
                    self._handles.pop(active.id, None)
                self._publish(stored)

        try:
            await asyncio.gather(*(one(run) for run in stored.runs))
            bound.info("batch finished", total=len(stored.runs))
        finally:
            self._drivers.pop(stored.id, None)
            self._publish(stored)
            self.channels.drop(stored.id)

    async def _finish(self, run: BatchRun, active: RunHandle) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            record = await active.wait()
            run.status, run.outputs, run.error = record.status, record.outputs, record.error

    def _publish(self, stored: StoredBatch) -> None:
        channel = self.channels.get(stored.id)
        if channel is not None:
            channel.publish(self._progress(stored))
