"""The run service: starts, reruns, resumes and cancels stored runs; the executor does the work,
storage keeps every result, listeners hear about it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from engine import history, settings
from engine.agents import AgentStore
from engine.distributed.scheduler import QUEUE_OWNER
from engine.document import Workflow, from_builtins, to_builtins
from engine.errors import Conflict, NotFound
from engine.events import Listener
from engine.executor import DEFAULT_CONCURRENCY, Execution
from engine.graph import Plan, compile_plan, replan
from engine.inputs import resolve_inputs
from engine.records import RunRecord
from engine.reruns import override, reasons, snapshot
from engine.results import NodeState, RunResult
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.repository import Store, run_record
from engine.storage.tables import RunRow
from engine.storage.writer import ResultWriter
from nodes.base import CheckContext
from nodes.registry import NodeRegistry

if TYPE_CHECKING:
    from engine.distributed.runs import RunQueue
    from engine.models import ModelService

log = structlog.get_logger("nodeloom.runs")

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


RECENT_RUNS = 8  # finished runs whose plan and results stay in memory for quick reruns
RECENT_PLANS = 64  # documents whose compiled plan is kept


class RecentRun(NamedTuple):
    row: RunRow  # as stored when the run finished (finished runs do not change)
    plan: Plan
    states: dict[str, NodeState]  # what a rerun may take over


class ActiveRun:
    """A run executing in this process."""

    def __init__(self, run_id: str, execution: Execution) -> None:
        self.id = run_id
        self.execution = execution
        self.task: asyncio.Task[RunRecord] | None = None

    async def wait(self) -> RunRecord:
        assert self.task is not None
        return await asyncio.shield(self.task)

    def cancel(self) -> None:
        self.execution.cancel()


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
        self.process = f"{socket.gethostname()}:{os.getpid()}:{new_id('p')[2:10]}"
        self.active: dict[str, ActiveRun] = {}
        self._writer = ResultWriter(database)
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self._recent: OrderedDict[str, RecentRun] = OrderedDict()
        self._plans: OrderedDict[int, tuple[Workflow, Plan]] = OrderedDict()
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
        """The compiled plan; the same document object (the API's cached current version of a
        workflow, say) is compiled once. Documents are never changed in place."""
        cached = self._plans.get(id(workflow))
        if cached is not None and cached[0] is workflow:
            self._plans.move_to_end(id(workflow))
            return cached[1]
        plan = compile_plan(workflow, self.registry, self.check_context)
        self._plans[id(workflow)] = (workflow, plan)
        while len(self._plans) > RECENT_PLANS:
            self._plans.popitem(last=False)
        return plan

    async def start(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        workflow_id: str | None = None,
        workflow_version: int | None = None,
        owner_id: str | None = None,
        listeners: Iterable[Listener] = (),
    ) -> ActiveRun:
        """Validate, store and start a run; bad documents or inputs raise, storing nothing.
        Saved agents the workflow names are copied into the run's snapshot."""
        workflow = await self.agents.inline(workflow, owner_id=owner_id)
        plan = self.plan(workflow)
        resolved = resolve_inputs(plan, inputs or {})
        run_id = new_id("run")
        row = self._row(
            run_id,
            workflow,
            resolved,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            owner_id=owner_id,
            root=run_id,
        )
        return await self._launch(row, plan, resolved, listeners=listeners, insert=True)

    async def rerun(
        self,
        run_id: str,
        *,
        from_node: str | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        inputs: Mapping[str, Any] | None = None,
        owner_id: str | None = None,
        listeners: Iterable[Listener] = (),
    ) -> ActiveRun:
        """A child run of ``run_id`` with the overrides applied, reusing every result whose cache
        key did not change, except ``from_node`` and what lies downstream of it."""
        recent = self._recent.get(run_id)
        if recent is None:
            parent = await self.store.run_row(run_id, owner_id=owner_id)
        elif owner_id is not None and recent.row.owner_id != owner_id:
            raise NotFound(f"run {run_id} not found")
        else:  # storing the child checks that it is still there
            parent = recent.row
        if parent.status not in FINISHED:
            raise Conflict(f"run {run_id} is still {parent.status}; rerun it when it has finished")
        stored = parent.snapshot
        base = recent.plan.workflow if recent else from_builtins(stored)
        workflow = override(base, run_id, from_node, params or {}, self.registry)
        plan = None
        if recent is not None:
            plan = replan(recent.plan, workflow, params or {}, self.registry, self.check_context)
        # Nodes the replanned document shares with the parent's: same type, params and edges.
        trusted = set(plan.nodes) - set(params or {}) if plan is not None else set()
        if plan is None:
            plan = self.plan(workflow)
        resolved = resolve_inputs(plan, {**parent.inputs, **(inputs or {})})
        priors = recent.states if recent else await self.store.prior_results(run_id)
        reuse = {node_id: prior for node_id, prior in priors.items() if node_id in plan.nodes}
        forced = {from_node, *plan.downstream(from_node)} if from_node else set()
        why = reasons(base, workflow, from_node, forced)
        child_id = new_id("run")
        changes = {
            key: value
            for key, value in (("params", dict(params or {})), ("inputs", dict(inputs or {})))
            if value
        }
        row = self._row(
            child_id,
            workflow,
            resolved,
            workflow_id=parent.workflow_id,
            workflow_version=parent.workflow_version,
            owner_id=parent.owner_id,
            root=parent.root_run_id,
            parent=parent.id,
            from_node=from_node,
            changes=changes,
            snapshot=snapshot(stored, workflow, params or {}),
        )
        return await self._launch(
            row,
            plan,
            resolved,
            listeners=listeners,
            insert=True,
            reuse=reuse,
            force=forced,
            reasons=why,
            trusted=trusted,
        )

    async def resume(
        self, run_id: str, *, owner_id: str | None = None, listeners: Iterable[Listener] = ()
    ) -> ActiveRun:
        """Finish an interrupted run: committed node results stand, the rest executes."""
        await self.recover()
        row = await self.store.run_row(run_id, owner_id=owner_id)
        if row.status != "interrupted":
            raise Conflict(f"run {run_id} is {row.status}; only an interrupted run can be resumed")
        workflow = from_builtins(row.snapshot)
        plan = self.plan(workflow)
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

    def _row(
        self,
        run_id: str,
        workflow: Workflow,
        inputs: dict[str, Any],
        *,
        root: str,
        workflow_id: str | None,
        workflow_version: int | None,
        owner_id: str | None,
        parent: str | None = None,
        from_node: str | None = None,
        changes: dict[str, Any] | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> RunRow:
        stamp = now()
        return RunRow(
            id=run_id,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            workflow_name=workflow.name,
            owner_id=owner_id,
            parent_run_id=parent,
            root_run_id=root,
            from_node=from_node,
            changes=changes or {},
            snapshot=snapshot if snapshot is not None else to_builtins(workflow),
            inputs=inputs,
            outputs={},
            status="running",
            error=None,
            created_at=stamp,
            started_at=stamp,
            finished_at=None,
            owner_process=self.process,
            heartbeat_at=stamp,
            last_seq=0,
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
        trusted: Collection[str] = (),
        done: Mapping[str, NodeState] | None = None,
        first_seq: int = 0,
    ) -> ActiveRun:
        execution = Execution(
            plan,
            inputs,
            run_id=row.id,
            listeners=[self._writer.event, *listeners],
            store=self._writer,
            reuse=reuse,
            force=set(force),
            reasons=reasons,
            trusted=trusted,
            done=done,
            max_concurrency=self.max_concurrency,
            workspace=self.workspace_of(row.owner_id),
            first_seq=first_seq,
            models=self.models,
        )
        if insert:
            # What it takes over is stored with the run's row, as references: on workers too,
            # where only the nodes left are queued.
            row.reused = await execution.take_over()
        if self.queue is not None:
            return await self.queue.launch(
                self,
                row,
                plan,
                listeners=listeners,
                insert=insert,
                reuse_from=row.parent_run_id if reuse else None,
                force=set(force),
                reasons=reasons,
                done=set(done or {}),
                first_seq=first_seq,
            )
        if insert:
            await self._writer.run_started(row)
        active = ActiveRun(row.id, execution)
        self.active[row.id] = active
        active.task = asyncio.create_task(self._drive(row, execution))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        return active

    async def _drive(self, row: RunRow, execution: Execution) -> RunRecord:
        bound = log.bind(run_id=row.id, workflow_id=row.workflow_id)
        try:
            result = await execution.execute()
            status = (
                "interrupted" if self._closing and result.status == "cancelled" else result.status
            )
            await self._writer.run_finished(
                row.id,
                status=status,
                outputs=result.outputs,
                error=result.error,
                finished_at=result.finished_at,
                last_seq=execution.last_seq,
            )
            bound.info("run finished", status=status)
            record = self._record(row, result, status)
            if status != "interrupted":
                self._remember(row, execution.plan, result)
            return record
        finally:
            self.active.pop(row.id, None)

    def _remember(self, row: RunRow, plan: Plan, result: RunResult) -> None:
        """Keep a finished run's row, plan and results, so that rerunning it in this process
        (the editor's run, tweak, rerun loop) neither reads nor compiles them again."""
        self._recent[row.id] = RecentRun(row, plan, result.nodes)
        while len(self._recent) > RECENT_RUNS:
            self._recent.popitem(last=False)

    def _record(self, row: RunRow, result: RunResult, status: str) -> RunRecord:
        row.status, row.outputs, row.error = status, result.outputs, result.error
        row.finished_at = result.finished_at
        return run_record(row, result.nodes)

    # -- control --------------------------------------------------------------------------

    async def execute(
        self, workflow: Workflow, inputs: Mapping[str, Any] | None = None, **options: Any
    ) -> RunRecord:
        """Start a run and wait for it."""
        return await (await self.start(workflow, inputs, **options)).wait()

    async def cancel(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        row = await self.store.run_row(run_id, owner_id=owner_id)
        if self.queue is not None and row.owner_process == QUEUE_OWNER:
            if row.status in FINISHED:
                raise Conflict(f"run {run_id} has already finished ({row.status})")
            return await self.queue.cancel(self, run_id)
        active = self.active.get(run_id)
        if active is not None:
            active.cancel()
            return await active.wait()
        if row.status in FINISHED:
            raise Conflict(f"run {run_id} has already finished ({row.status})")
        raise Conflict(f"run {run_id} is executing in another process ({row.owner_process})")

    async def recover(self) -> list[str]:
        """Mark runs whose process died (or stopped its heartbeat) as interrupted."""
        interrupted = []
        stale_before = now() - timedelta(seconds=self.lease_timeout_s)
        for row in await self.store.running_rows():
            if row.owner_process in (self.process, QUEUE_OWNER):  # workers hold leases instead
                continue
            gone = not _process_alive(row.owner_process)
            stale = row.heartbeat_at is None or row.heartbeat_at < stale_before
            if (gone or stale) and await self.store.mark_interrupted(
                row.id, process=row.owner_process
            ):
                interrupted.append(row.id)
                log.warning("run interrupted", run_id=row.id, owner=row.owner_process)
        return interrupted

    async def close(self) -> None:
        """Stop: runs still executing are stopped and left `interrupted`, to be resumed."""
        self._closing = True
        for active in list(self.active.values()):
            active.cancel()
        for active in list(self.active.values()):
            with contextlib.suppress(Exception):
                await active.wait()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._writer.flush()
        if self.queue is not None:
            await self.queue.close()

    async def _beat(self) -> None:
        interval = max(self.lease_timeout_s / 3, 0.05)
        while self.active:
            await asyncio.sleep(interval)
            try:
                await self.store.heartbeat(list(self.active), self.process)
            except Exception:
                log.exception("heartbeat failed")

    # -- reading --------------------------------------------------------------------------

    async def get(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        return await self.store.get_run(run_id, owner_id=owner_id)

    async def tree(self, run_id: str, *, owner_id: str | None = None) -> dict[str, Any]:
        return await history.tree(self.store, run_id, owner_id=owner_id)

    async def branch(self, run_id: str, *, owner_id: str | None = None) -> list[str]:
        return await history.branch(self.store, run_id, owner_id=owner_id)

    async def diff(self, a: str, b: str, *, owner_id: str | None = None) -> dict[str, Any]:
        return await history.diff(self.store, a, b, owner_id=owner_id)


def _process_alive(owner: str | None) -> bool:
    """Whether the process named ``host:pid:…`` still runs (unknown hosts count as alive)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True
