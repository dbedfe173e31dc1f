"""The run service: starts, reruns, resumes and cancels stored runs; its launcher executes them
(in this process, or queued for workers), storage keeps every result, observers and listeners
hear about them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from engine.documents.document import (
    Workflow,
    decode_workflow,
    from_builtins,
    workflow_with_params,
)
from engine.documents.graph import compile_plan, replan
from engine.documents.inputs import resolve_inputs
from engine.documents.plan import Plan
from engine.documents.stored import decode_plan, encode_plan, plan_key
from engine.errors import Conflict, NotFound, WorkflowInvalid, describe
from engine.execution.events import AnyEvent, Listener
from engine.execution.executor import DEFAULT_CONCURRENCY, DEFAULT_MAX_ITEMS
from engine.execution.replays import Replay
from engine.execution.results import NodeState
from engine.execution.start import RunStart, Snapshot
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from engine.records import Page, RunRecord
from engine.runs import history
from engine.runs.launch import (
    FINISHED,
    InProcess,
    Launcher,
    RunHandle,
    RunObserver,
)
from engine.runs.processes import QUEUE_OWNER, interrupt_orphans, process_name
from engine.runs.recent import Recent
from engine.runs.reruns import override, plan_rerun
from engine.runs.saved_bodies import with_saved_bodies
from engine.runs.waits import WaitingRuns
from engine.settings import owner_workspace
from engine.storage.agents import AgentStore
from engine.storage.database import Database
from engine.storage.keys import new_id
from engine.storage.priors import ParentRow, parent_row
from engine.storage.repository import Store, new_run_row
from engine.storage.tables import RunRow
from engine.storage.writer import document_blob

if TYPE_CHECKING:
    from engine.knowledge.service import Knowledge
    from engine.models import ModelService

__all__ = ["RunService"]

log = structlog.get_logger("nodeloom.runs")


class RunService(WaitingRuns):
    """Everything a caller does with runs. One per process and database."""

    def __init__(
        self,
        database: Database,
        registry: NodeRegistry,
        *,
        workspace: Path | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        max_items: int = DEFAULT_MAX_ITEMS,
        lease_timeout_s: float = 30.0,
        check_context: CheckContext | None = None,
        models: ModelService | None = None,
        launcher: Launcher | None = None,
        observers: Iterable[RunObserver] = (),
    ) -> None:
        """Runs execute in this process unless a ``launcher`` says where (the queue for
        `nodeloom worker`s: engine/distributed/launch.py); ``observers`` hear every run."""
        self.store = Store(database)
        self.agents = AgentStore(database)
        self.registry = registry
        self.workspace = workspace or Path("workspace")
        self.lease_timeout_s = lease_timeout_s
        self.models = models
        self.check_context = check_context or CheckContext(
            workspace=self.workspace, models=models.names if models else None
        )
        self.process = process_name()
        # The collections `retrieve` nodes name are checked against (set by whoever opens
        # them: engine/knowledge/service.py); None: not checked before a run.
        self.knowledge: Knowledge | None = None
        self.observers = list(observers)
        self._recent = Recent()
        self._storing: set[asyncio.Task[None]] = set()
        self.launcher: Launcher = launcher or InProcess(
            self.store,
            process=self.process,
            lease_timeout_s=lease_timeout_s,
            workspace=self.workspace,
            models=models,
            max_concurrency=max_concurrency,
            max_items=max_items,
            finished=self._recent.finished,
        )

    @property
    def active(self) -> Mapping[str, RunHandle]:
        """The runs launched from this process that have not ended."""
        return self.launcher.active

    def workspace_of(self, owner_id: str | None) -> Path:
        """Where a run's file nodes read and write (see `owner_workspace`)."""
        return owner_workspace(self.workspace, owner_id)

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
        trigger: str = "api",
    ) -> RunHandle:
        """Validate, store and start a run; bad documents or inputs raise, storing nothing.
        Saved agents the workflow names are copied into the run's snapshot.

        A caller that waits for the run's end (``caller_waits``) lets its row be stored with
        its first commit, within `DEFERRED_START_S`: this returns before it is."""
        workflow = await self.agents.inline(workflow, owner_id=owner_id)
        workflow = await self.with_saved_bodies(
            workflow, owner_id=owner_id, workflow_id=workflow_id
        )
        plan = self.plan(workflow)
        await self.check_collections(workflow, owner_id)
        document = self._recent.blob(workflow, document_blob)
        key = plan_key(document["digest"], self.registry)
        self._keep_plan(key, plan)
        self._recent.keep_stored_plan(key, plan)
        start = RunStart(
            id=new_id("run"),
            plan=plan,
            inputs=resolve_inputs(plan, inputs or {}),
            snapshot=Snapshot(document["digest"], document=document),
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            owner_id=owner_id,
            caller_waits=caller_waits,
            trigger=trigger,
        )
        return await self.launch(start, listeners)

    async def check_collections(self, workflow: Workflow, owner_id: str | None) -> None:
        """`WorkflowInvalid` when a `retrieve` node names a collection the owner lacks."""
        if self.knowledge is None:
            return
        from engine.knowledge.checks import collection_issues  # noqa: PLC0415 - numpy, lazily

        issues = await collection_issues(workflow, self.knowledge, owner_id)
        if issues:
            raise WorkflowInvalid(issues)

    async def with_saved_bodies(
        self, workflow: Workflow, *, owner_id: str | None, workflow_id: str | None = None
    ) -> Workflow:
        """The document with the saved workflows its body nodes run copied in, as it is
        validated and run (see engine/runs/saved_bodies.py)."""
        return await with_saved_bodies(
            workflow, self.store, self.registry, owner_id=owner_id, workflow_id=workflow_id
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
        trigger: str = "api",
        replay: str | None = None,
        workflow: Workflow | None = None,
        version: int | None = None,
    ) -> RunHandle:
        """A child run of ``run_id`` with the overrides applied, reusing every result whose cache
        key did not change, except ``from_node`` and what lies downstream of it. As `start`
        with ``caller_waits``.

        With ``replay`` (what a miss does: ``fail`` or ``call``), the child replays the run
        instead (SPEC §17): it reuses nothing, every node executes, and the recordable ones take
        the run's records while their cache keys are the recorded ones (see `replay`). A
        ``workflow`` given is the child's document instead of the run's (its ``version``)."""
        recent = self._recent.run(run_id)
        parent: ParentRow
        parent_plan: Plan | None
        reuse: Mapping[str, NodeState]
        if recent is None:  # its row, document, plan and results, read at once
            parent, base, parent_plan, reuse = await self._parent(run_id, owner_id)
        elif owner_id is not None and recent.row.owner_id != owner_id:
            raise NotFound(f"run {run_id} not found")
        else:  # storing the child checks that it is still there
            parent = parent_row(recent.row)
            base, parent_plan, reuse = recent.plan.workflow, recent.plan, recent.states
        if parent.status not in FINISHED:
            raise Conflict(f"run {run_id} is still {parent.status}; rerun it when it has finished")
        # New params naming a saved workflow (or its version): the child's document copies it in,
        # and is stored as a document of its own.
        document = None
        if workflow is not None:
            document = await self.with_saved_bodies(
                override(workflow, parent.id, from_node, params or {}, self.registry),
                owner_id=parent.owner_id,
                workflow_id=parent.workflow_id,
            )
        elif any({"workflow", "version"} & changes.keys() for changes in (params or {}).values()):
            document = await self.with_saved_bodies(
                override(base, parent.id, from_node, params or {}, self.registry, plan=parent_plan),
                owner_id=parent.owner_id,
                workflow_id=parent.workflow_id,
            )
        child = plan_rerun(
            parent.id,
            base,
            parent_plan if workflow is None else None,  # another document: compiled whole
            overridden=parent.snapshot_overrides,
            from_node=from_node,
            params=params or {},
            inputs=inputs or {},
            registry=self.registry,
            context=self.check_context,
            compile_plan=self.plan,
            document=document,
        )
        plan = child.plan
        await self.check_collections(plan.workflow, parent.owner_id)
        start = RunStart(
            id=new_id("run"),
            plan=plan,
            inputs=resolve_inputs(plan, {**parent.inputs, **(inputs or {})}),
            snapshot=(
                Snapshot(parent.snapshot_blob, child.overrides)
                if document is None
                else self._snapshot(document)
            ),
            workflow_id=parent.workflow_id,
            workflow_version=version if workflow is not None else parent.workflow_version,
            owner_id=parent.owner_id,
            parent_run_id=parent.id,
            root_run_id=parent.root_run_id,
            from_node=from_node,
            changes=child.changes,
            caller_waits=caller_waits,
            trigger=trigger,
        )
        if replay is None:
            start = replace(
                start,
                reuse=reuse,
                force=frozenset(child.forced),
                reasons=child.reasons,
                changed=None if child.changed is None else frozenset(child.changed),
            )
        else:
            start = replace(start, replay=Replay(parent.id, reuse, on_miss=replay))
        return await self.launch(start, listeners)

    async def replay(
        self,
        run_id: str,
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        inputs: Mapping[str, Any] | None = None,
        on_miss: str = "fail",
        owner_id: str | None = None,
        listeners: Iterable[Listener] = (),
        caller_waits: bool = False,
        trigger: str = "api",
        workflow: Workflow | None = None,
        version: int | None = None,
    ) -> RunHandle:
        """A child run replaying ``run_id`` (SPEC §17), with the overrides applied: every node
        executes again, except that the recordable ones (models, tools: what talks to the
        outside world) take the run's recorded output while their cache key is the recorded
        one. On another key, ``on_miss`` ``fail`` fails the node saying what changed; ``call``
        executes it. ``workflow`` replays the run's inputs through another document (the
        workflow's current version, say) instead of the run's own."""
        if on_miss not in ("fail", "call"):
            raise ValueError(f"on_miss must be fail or call, not {on_miss!r}")
        return await self.rerun(
            run_id,
            params=params,
            inputs=inputs,
            owner_id=owner_id,
            listeners=listeners,
            caller_waits=caller_waits,
            trigger=trigger,
            replay=on_miss,
            workflow=workflow,
            version=version,
        )

    def _snapshot(self, workflow: Workflow) -> Snapshot:
        """A run's document stored as a document of its own (no overrides)."""
        blob = self._recent.blob(workflow, document_blob)
        return Snapshot(blob["digest"], document=blob)

    async def run_plan(self, run_id: str, *, owner_id: str | None = None) -> Plan:
        """The plan of the document the run ``run_id`` ran (its stored document with its param
        overrides), as a rerun of it plans from: a run not in memory has its stored document's
        plan read (compiled only when none is stored) and kept, so that a rerun of it that
        follows (`nodeloom rerun` shows this plan first) reads neither again. `NotFound` as
        `rerun`."""
        recent = self._recent.run(run_id)
        if recent is None:
            _, base, plan, _ = await self._parent(run_id, owner_id, results=False)
            return plan or self.plan(base)  # overrides that could not be analysed alone
        if owner_id is not None and recent.row.owner_id != owner_id:
            raise NotFound(f"run {run_id} not found")
        return recent.plan

    async def _parent(
        self, run_id: str, owner_id: str | None, *, results: bool = True
    ) -> tuple[ParentRow, Workflow, Plan | None, dict[str, NodeState]]:
        """A run that is not in memory, as its rerun needs it: its row, the document it ran, the
        plan of that document when it can be had without compiling it whole (its stored
        document's plan, compiled once by whichever process ran it first, with the run's param
        overrides analysed again), and its reusable results (none without ``results``)."""
        recent, registry = self._recent, self.registry

        def key_of(digest: str) -> str:
            return plan_key(digest, registry)

        found = await self.store.parent(
            run_id,
            key_of,
            owner_id=owner_id,
            known=recent.stored_plan_keys(),
            results=results,
        )
        row = found.row
        key = key_of(row.snapshot_blob)
        plan = recent.stored_plan(key)
        if plan is None:  # not kept here (or no longer: read again)
            if found.document is None:
                found = await self.store.parent(run_id, key_of, owner_id=owner_id, results=results)
            assert found.document is not None
            root = decode_workflow(found.document)
            plan = None if found.plan is None else decode_plan(found.plan, root, registry)
            if plan is None:
                plan = self.plan(root)
                self._keep_plan(key, plan)
            recent.keep_stored_plan(key, plan)
        overrides = row.snapshot_overrides
        base = workflow_with_params(plan.workflow, overrides) if overrides else plan.workflow
        if overrides:
            plan = replan(plan, base, overrides, registry, self.check_context)
        return row, base, plan, found.results

    def _keep_plan(self, key: str, plan: Plan) -> None:
        """Store the plan of a document about to run, once, so that no other process compiles
        it again (in the background: a run does not wait for it), the plans of its bodies
        with it."""
        if not self._recent.new_plan_key(key):
            return
        task = asyncio.create_task(self._store_plan(key, plan))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store_plan(self, key: str, plan: Plan) -> None:
        try:
            await self.store.store_compiled_plan(key, encode_plan(plan))
        except Exception as exc:  # noqa: BLE001 - without it, others compile the plan again
            self._recent.forget_plan_key(key)
            log.warning("compiled plan not stored", error=describe(exc))

    async def resume(
        self, run_id: str, *, owner_id: str | None = None, listeners: Iterable[Listener] = ()
    ) -> RunHandle:
        """Finish an interrupted run: committed node results stand, the rest executes."""
        await self.recover()
        row = await self.store.run_row(run_id, owner_id=owner_id)
        if row.status != "interrupted":
            raise Conflict(f"run {run_id} is {row.status}; only an interrupted run can be resumed")
        plan = self.plan(from_builtins(await self.store.snapshot(row)))
        states = await self.store.node_states(run_id)
        return await self._go_on(row, plan, states, {}, listeners, claimed="interrupted")

    async def launch(self, start: RunStart, listeners: Iterable[Listener] = ()) -> RunHandle:
        """Store and launch a new run (see `start` and `rerun`)."""
        return await self._launch(start, new_run_row(start, self.process), listeners)

    async def _launch(
        self, start: RunStart, row: RunRow, listeners: Iterable[Listener]
    ) -> RunHandle:
        """The one way runs are launched: with the observers' listeners, then shown to them."""
        handle = await self.launcher.launch(start, row, self._listeners(listeners))
        for observer in self.observers:
            observer.launched(handle)
        return handle

    async def _settle_queued(
        self,
        row: RunRow,
        plan: Plan,
        node_id: str,
        state: NodeState,
        listeners: Iterable[Listener],
    ) -> RunHandle:
        """Settle a waiting node of a run on workers, which goes on there, shown to the
        observers as a launch is."""
        handle = await self.launcher.settle_waiting(
            row, plan, node_id, state, self._listeners(listeners)
        )
        for observer in self.observers:
            observer.launched(handle)
        return handle

    def _listeners(self, listeners: Iterable[Listener]) -> list[Listener]:
        return [*(observer.publish for observer in self.observers), *listeners]

    # -- control --------------------------------------------------------------------------

    async def execute(
        self, workflow: Workflow, inputs: Mapping[str, Any] | None = None, **options: Any
    ) -> RunRecord:
        """Start a run and wait for it."""
        handle: RunHandle = await self.start(workflow, inputs, caller_waits=True, **options)
        return await handle.wait()

    async def cancel(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        """Cancel a run executing here (or on workers, when they execute this service's runs)
        and wait for its end."""
        try:
            row = await self.store.run_row(run_id, owner_id=owner_id)
        except NotFound:
            if self.unstored(run_id, owner_id) is None:
                raise
            row = None
        if row is not None and row.status == "waiting":  # ended here, its waits cancelled
            plan = self.plan(from_builtins(await self.store.snapshot(row)))
            if row.owner_process == QUEUE_OWNER:
                return await self.launcher.cancel_waiting(row, plan)
            states = await self.store.node_states(run_id)
            handle = await self._go_on(row, plan, states, {}, ())
            handle.cancel()
            return await handle.wait()
        return await self.launcher.cancel(run_id, row)

    async def recover(self) -> list[str]:
        """Mark runs whose process died (or stopped its heartbeat) as interrupted."""
        return await interrupt_orphans(self.store, self.process, self.lease_timeout_s)

    async def settled(self) -> None:
        """Wait until what is stored in the background once a run is stored (the plan of a new
        document; what reruns of a run that ended may take over) is stored."""
        await asyncio.gather(*self._storing, return_exceptions=True)
        await self.launcher.settled()

    async def close(self) -> None:
        """Stop: runs still executing here are stopped and left `interrupted`, to be resumed."""
        await self.launcher.close()
        await asyncio.gather(*self._storing, return_exceptions=True)

    # -- reading --------------------------------------------------------------------------

    async def get(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        try:
            return await self.store.get_run(run_id, owner_id=owner_id)
        except NotFound:
            record = self.unstored(run_id, owner_id)
            if record is None:
                raise
            return record

    def unstored(self, run_id: str, owner_id: str | None) -> RunRecord | None:
        """A run executing here whose row may not be stored yet (see `start`'s
        ``caller_waits``), as it stands, when ``owner_id`` may see it."""
        handle = self.active.get(run_id)
        return None if handle is None else handle.unstored(owner_id)

    async def row(self, run_id: str, *, owner_id: str | None = None) -> RunRow:
        """The run's row; `NotFound` when it is not stored or ``owner_id`` may not see it."""
        return await self.store.run_row(run_id, owner_id=owner_id)

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        owner_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Stored runs, newest first, a page at a time."""
        return await self.store.list_runs(
            workflow_id=workflow_id,
            status=status,
            trigger=trigger,
            owner_id=owner_id,
            limit=limit,
            cursor=cursor,
        )

    async def events(self, run_id: str, *, after: int = 0) -> list[tuple[int, str]]:
        """The stored events of a run after ``after``: (seq, JSON)."""
        return await self.store.events(run_id, after=after)

    def events_elsewhere(self, run_id: str, after: int) -> AsyncIterator[AnyEvent]:
        """The events of a run that does not execute in this process, after ``after``, until
        its end (read where its launcher executes runs)."""
        return self.launcher.elsewhere(run_id, after)

    async def tree(self, run_id: str, *, owner_id: str | None = None) -> dict[str, Any]:
        return await history.tree(self.store, run_id, owner_id=owner_id)

    async def branch(self, run_id: str, *, owner_id: str | None = None) -> list[str]:
        return await history.branch(self.store, run_id, owner_id=owner_id)

    async def diff(self, a: str, b: str, *, owner_id: str | None = None) -> dict[str, Any]:
        return await history.diff(self.store, a, b, owner_id=owner_id)
