"""The run service: starts, reruns, resumes and cancels stored runs; the executor does the work,
storage keeps every result, listeners hear about it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from engine import history, settings
from engine.active import ActiveRun
from engine.agents import AgentStore
from engine.distributed.scheduler import QUEUE_OWNER
from engine.document import Workflow, from_builtins
from engine.errors import Conflict, NotFound
from engine.events import Listener
from engine.executor import DEFAULT_CONCURRENCY, Execution
from engine.graph import Plan, compile_plan
from engine.inputs import resolve_inputs
from engine.processes import heartbeat, interrupt_orphans, process_name
from engine.recent import Recent
from engine.records import RunRecord
from engine.reruns import plan_rerun
from engine.results import NodeState, RunResult
from engine.storage.database import Database
from engine.storage.keys import new_id
from engine.storage.repository import Store, new_run_row, run_record
from engine.storage.tables import RunRow
from engine.storage.writer import ResultWriter, document_blob
from nodes.base import CheckContext
from nodes.registry import NodeRegistry

if TYPE_CHECKING:
    from engine.distributed.runs import RunQueue
    from engine.models import ModelService

log = structlog.get_logger("nodeloom.runs")

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
# How long the row of a run whose caller waits for its end may wait to be stored with the run's
# first commit (one transaction fewer for a run that ends at once): nobody has its id meanwhile.
DEFERRED_START_S = 0.02


class RunService:
    """Everything a caller does with runs. One per process and database."""

    def __init__(
        self,
        database: Database,
        registry: NodeRegistry,
        *,
        workspace: Path | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        lease_timeout_s: float = 30.0,
        check_context: CheckContext | None = None,
        models: ModelService | None = None,
        queue: RunQueue | None = None,
    ) -> None:
        self.store = Store(database)
        self.agents = AgentStore(database)
        self.registry = registry
        self.workspace = workspace or Path("workspace")
        self.max_concurrency = max_concurrency
        self.lease_timeout_s = lease_timeout_s
        self.models = models
        self.check_context = check_context or CheckContext(
            workspace=self.workspace, models=models.names if models else None
        )
        self.process = process_name()
        self.active: dict[str, ActiveRun] = {}
        self._writer = ResultWriter(database)
        self._heartbeat: asyncio.Task[None] | None = None
        self._recent = Recent()
        # With a queue (or NODELOOM_EXECUTION=workers), runs are queued for `nodeloom worker`s.
        if queue is None and settings.execution() == "workers":
            from engine.distributed.runs import RunQueue  # noqa: PLC0415 - PostgreSQL only

            queue = RunQueue(database)
        self.queue = queue

    def workspace_of(self, owner_id: str | None) -> Path:
        """Where a run's file nodes read and write: a user's runs only in ``users/<id>/``, the
        folder their files live in through the API; runs without an owner in the whole folder."""
        if owner_id is None:
            return self.workspace
        folder = self.workspace / "users" / owner_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- starting runs --------------------------------------------------------------------

    def plan(self, workflow: Workflow) -> Plan:
        """The compiled plan, made once per document object (see `Recent.plan`)."""
        return self._recent.plan(
            workflow, lambda document: compile_plan(document, self.registry, self.check_context)
        )

    async def start(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        workflow_id: str | None = None,
        workflow_version: int | None = None,
        owner_id: str | None = None,
        listeners: Iterable[Listener] = (),
        caller_waits: bool = False,
    ) -> ActiveRun:
        """Validate, store and start a run; bad documents or inputs raise, storing nothing.
        Saved agents the workflow names are copied into the run's snapshot.

        A caller that waits for the run's end (``caller_waits``) lets its row be stored with
        its first commit, within `DEFERRED_START_S`: this returns before it is."""
        workflow = await self.agents.inline(workflow, owner_id=owner_id)
        plan = self.plan(workflow)
        resolved = resolve_inputs(plan, inputs or {})
        run_id = new_id("run")
        document = self._recent.blob(workflow, document_blob)
        row = new_run_row(
            run_id,
            workflow,
            resolved,
            process=self.process,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            owner_id=owner_id,
            root=run_id,
            snapshot_blob=document["digest"],
        )
        return await self._launch(
            row,
            plan,
            resolved,
            listeners=listeners,
            insert=True,
            document=document,
            defer=DEFERRED_START_S if caller_waits else None,
        )

    async def rerun(
        self,
        run_id: str,
        *,
        from_node: str | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        inputs: Mapping[str, Any] | None = None,
        owner_id: str | None = None,
        listeners: Iterable[Listener] = (),
        caller_waits: bool = False,
    ) -> ActiveRun:
        """A child run of ``run_id`` with the overrides applied, reusing every result whose cache
        key did not change, except ``from_node`` and what lies downstream of it. As `start`
        with ``caller_waits``."""
        recent = self._recent.run(run_id)
        if recent is None:
            parent = await self.store.run_row(run_id, owner_id=owner_id)
        elif owner_id is not None and recent.row.owner_id != owner_id:
            raise NotFound(f"run {run_id} not found")
        else:  # storing the child checks that it is still there
            parent = recent.row
        if parent.status not in FINISHED:
            raise Conflict(f"run {run_id} is still {parent.status}; rerun it when it has finished")
        if recent is not None:
            base = recent.plan.workflow
        else:
            base = from_builtins(await self.store.snapshot(parent))
        child = plan_rerun(
            parent.id,
            base,
            recent.plan if recent else None,
            overridden=parent.snapshot_overrides,
            from_node=from_node,
            params=params or {},
            inputs=inputs or {},
            registry=self.registry,
            context=self.check_context,
            compile_plan=self.plan,
        )
        plan = child.plan
        resolved = resolve_inputs(plan, {**parent.inputs, **(inputs or {})})
        reuse = recent.states if recent else await self.store.prior_results(run_id)
        row = new_run_row(
            new_id("run"),
            plan.workflow,
            resolved,
            process=self.process,
            workflow_id=parent.workflow_id,
            workflow_version=parent.workflow_version,
            owner_id=parent.owner_id,
            root=parent.root_run_id,
            parent=parent.id,
            from_node=from_node,
            changes=child.changes,
            snapshot_blob=parent.snapshot_blob,
            snapshot_overrides=child.overrides,
        )
        return await self._launch(
            row,
            plan,
            resolved,
            listeners=listeners,
            insert=True,
            reuse=reuse,
            force=child.forced,
            reasons=child.reasons,
            changed=child.changed,
            defer=DEFERRED_START_S if caller_waits else None,
        )

    async def resume(
        self, run_id: str, *, owner_id: str | None = None, listeners: Iterable[Listener] = ()
    ) -> ActiveRun:
        """Finish an interrupted run: committed node results stand, the rest executes."""
        await self.recover()
        row = await self.store.run_row(run_id, owner_id=owner_id)
        if row.status != "interrupted":
            raise Conflict(f"run {run_id} is {row.status}; only an interrupted run can be resumed")
        plan = self.plan(from_builtins(await self.store.snapshot(row)))
        done = {
            node_id: state
            for node_id, state in (await self.store.node_states(run_id)).items()
            if state.status != "cancelled" and node_id in plan.nodes
        }
        if not await self.store.claim_for_resume(run_id, self.process):
            raise Conflict(f"run {run_id} is being resumed elsewhere")
        row.status, row.owner_process = "running", self.process
        return await self._launch(
            row,
            plan,
            row.inputs,
            listeners=listeners,
            insert=False,
            done=done,
            first_seq=await self.store.last_seq(run_id),
        )

    async def _launch(
        self,
        row: RunRow,
        plan: Plan,
        inputs: dict[str, Any],
        *,
        listeners: Iterable[Listener],
        insert: bool,
        reuse: Mapping[str, NodeState] | None = None,
        force: Iterable[str] = (),
        reasons: Mapping[str, str] | None = None,
        changed: Collection[str] | None = None,
        done: Mapping[str, NodeState] | None = None,
        first_seq: int = 0,
        document: dict[str, Any] | None = None,
        defer: float | None = None,
    ) -> ActiveRun:
        """Store (when ``insert``, with the blob row of its ``document`` when that may not be
        stored yet; with its first commit, within ``defer`` seconds, when given) and start a
        run, here or on workers."""
        execution = Execution(
            plan,
            inputs,
            run_id=row.id,
            listeners=listeners,
            store=self._writer,
            reuse=reuse,
            force=set(force),
            reasons=reasons,
            changed=changed,
            done=done,
            max_concurrency=self.max_concurrency,
            workspace=self.workspace_of(row.owner_id),
            first_seq=first_seq,
            models=self.models,
        )
        # What it takes over is stored with the run's row, as references: on workers too, where
        # only the nodes left are queued.
        reused = await execution.take_over() if insert else {}
        if self.queue is not None:
            return await self.queue.launch(
                self,
                row,
                plan,
                listeners=listeners,
                insert=insert,
                document=document,
                reused=reused,
                reuse_from=row.parent_run_id if reuse else None,
                force=set(force),
                reasons=reasons,
                done=set(done or {}),
                first_seq=first_seq,
            )
        if insert:
            await self._writer.run_started(row, snapshot=document, reused=reused, defer=defer)
        active = ActiveRun(row, execution)
        self.active[row.id] = active
        active.task = asyncio.create_task(self._drive(row, execution))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(
                heartbeat(self.store, self.process, self.active.keys(), self.lease_timeout_s)
            )
        return active

    async def _drive(self, row: RunRow, execution: Execution) -> RunRecord:
        bound = log.bind(run_id=row.id, workflow_id=row.workflow_id)
        try:
            result = await execution.execute()  # which commits the run's end
            bound.info("run finished", status=result.status)
            record = self._record(row, result)
            if result.status != "interrupted":
                self._recent.finished(row, execution.plan, result.nodes.held)
            return record
        finally:
            self.active.pop(row.id, None)

    def _record(self, row: RunRow, result: RunResult) -> RunRecord:
        row.status, row.outputs, row.error = result.status, result.outputs, result.error
        row.finished_at = result.finished_at
        return run_record(row, result.nodes)

    # -- control --------------------------------------------------------------------------

    async def execute(
        self, workflow: Workflow, inputs: Mapping[str, Any] | None = None, **options: Any
    ) -> RunRecord:
        """Start a run and wait for it."""
        return await (await self.start(workflow, inputs, caller_waits=True, **options)).wait()

    async def cancel(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        try:
            row = await self.store.run_row(run_id, owner_id=owner_id)
        except NotFound:
            row = None
            if self.unstored(run_id, owner_id) is None:
                raise
        if row is not None and self.queue is not None and row.owner_process == QUEUE_OWNER:
            if row.status in FINISHED:
                raise Conflict(f"run {run_id} has already finished ({row.status})")
            return await self.queue.cancel(self, run_id)
        active = self.active.get(run_id)
        if active is not None:
            active.cancel()
            return await active.wait()
        assert row is not None
        if row.status in FINISHED:
            raise Conflict(f"run {run_id} has already finished ({row.status})")
        raise Conflict(f"run {run_id} is executing in another process ({row.owner_process})")

    async def recover(self) -> list[str]:
        """Mark runs whose process died (or stopped its heartbeat) as interrupted."""
        return await interrupt_orphans(self.store, self.process, self.lease_timeout_s)

    async def close(self) -> None:
        """Stop: runs still executing are stopped and left `interrupted`, to be resumed."""
        for active in list(self.active.values()):
            active.interrupt()
        for active in list(self.active.values()):
            with contextlib.suppress(Exception):
                await active.wait()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._writer.close()
        if self.queue is not None:
            await self.queue.close()

    # -- reading --------------------------------------------------------------------------

    async def get(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        try:
            return await self.store.get_run(run_id, owner_id=owner_id)
        except NotFound:
            active = self.unstored(run_id, owner_id)
            if active is None:
                raise
            return active.record()

    def unstored(self, run_id: str, owner_id: str | None) -> ActiveRun | None:
        """The run executing here whose row is not stored yet (see `start`'s
        ``caller_waits``), when ``owner_id`` may see it."""
        active = self.active.get(run_id)
        if active is None or active.row is None or owner_id not in (None, active.row.owner_id):
            return None
        return active

    async def tree(self, run_id: str, *, owner_id: str | None = None) -> dict[str, Any]:
        return await history.tree(self.store, run_id, owner_id=owner_id)

    async def branch(self, run_id: str, *, owner_id: str | None = None) -> list[str]:
        return await history.branch(self.store, run_id, owner_id=owner_id)

    async def diff(self, a: str, b: str, *, owner_id: str | None = None) -> dict[str, Any]:
        return await history.diff(self.store, a, b, owner_id=owner_id)
