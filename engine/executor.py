"""The async executor: runs a `Plan` node by node as inputs become ready, branches concurrently."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from engine.announcer import Announcer
from engine.attempts import execute_node, fail
from engine.events import Listener, RunStatus
from engine.graph import Plan, PlanNode
from engine.node_data import (
    cache_key,
    describe,
    gather,
    instantiate,
)
from engine.outcome import run_outputs, run_status
from engine.results import NodeState, ResultStore, RunResult, RunStates
from engine.reuse import reason_to_execute, reusable, take_over
from engine.storage.keys import now
from nodes.base import NodeContext, NodeType

if TYPE_CHECKING:
    from engine.models import ModelService

log = structlog.get_logger("nodeloom.executor")

DEFAULT_CONCURRENCY = 32
MAX_INLINE = 64  # nodes one task settles in a row before yielding its place
_TERMINAL_FAILURES = ("failed", "cancelled")


class Execution:
    """One run of a plan. `execute` runs it to the end; `cancel` stops it from anywhere.

    The inputs must already be resolved (`engine.inputs.resolve_inputs`). ``reuse`` offers earlier
    results by node id, as the nodes' states in the runs that computed them (a finished run's
    `RunResult.nodes`, say): one is taken, without executing the node, when its cache key is
    unchanged and the node is neither in ``force`` nor marked ``cache: never``. ``reasons``
    says why a node executes when that is known beforehand (``params changed: …``). ``done``
    holds node states this run committed before it was interrupted; they stand and are not
    executed again.
    ``changed`` names the nodes whose type, params or edges may differ from those in the run
    ``reuse`` comes from (None: any node): any other node is taken over when all it depends on
    is, without its key being made again.
    ``store`` commits each node result before the event announcing it goes to the ``listeners``.
    """

    def __init__(
        self,
        plan: Plan,
        inputs: Mapping[str, Any],
        *,
        run_id: str,
        listeners: Iterable[Listener] = (),
        store: ResultStore | None = None,
        reuse: Mapping[str, NodeState] | None = None,
        force: Collection[str] = (),
        reasons: Mapping[str, str] | None = None,
        changed: Collection[str] | None = None,
        done: Mapping[str, NodeState] | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        workspace: Path | None = None,
        first_seq: int = 0,
        models: ModelService | None = None,
    ) -> None:
        if reuse and done:
            raise ValueError("a run either reuses earlier results or resumes, not both")
        self.plan = plan
        self.inputs = dict(inputs)
        self.run_id = run_id
        # With results to reuse, `take_over` fills the states and counts.
        self.states = {} if reuse else {node_id: NodeState() for node_id in plan.nodes}
        self._events = Announcer(run_id, listeners, first_seq, store.event if store else None)
        self._store = store
        self._reuse = reuse or {}
        self._force = frozenset(force)
        self._reasons = reasons or {}
        self._changed = changed
        self._limit = max_concurrency
        self._running = 0  # tasks holding a slot
        self._ready: deque[PlanNode] = deque()  # ready, waiting for a free slot
        self._workspace = workspace or Path("workspace")
        self._models = models
        # What each node this run settles waits for: how many of its predecessors.
        self._waiting = (
            {} if reuse else {n: len(node.predecessors) for n, node in plan.nodes.items()}
        )
        self._blocked: set[str] = set()  # failed, cancelled, or skipped because of a failure
        self._remaining = len(plan.nodes)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # by the node a task started with
        self._cancelled = False
        self._fatal: str | None = None
        self._done: asyncio.Future[None] | None = None
        self._log = log.bind(run_id=run_id, workflow=plan.workflow.name)
        self._taken: dict[str, list[str]] | None = None
        self._taken_at: datetime | None = None
        # The last node's state, when its result is committed with the run's end.
        self._last: tuple[str, NodeState] | None = None
        self._interrupted = False
        for node_id, state in (done or {}).items():
            self._settled(plan.nodes[node_id], state)

    # -- public ---------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        started_at = now()
        self._done = asyncio.get_running_loop().create_future()
        reused = await self.take_over()
        self._events.run_started(self.plan.workflow.name, len(self.plan.nodes), reused)
        if self._cancelled or self._remaining == 0:
            self._done.set_result(None)
        else:
            for node_id, waiting in self._waiting.items():
                if waiting == 0 and not self.states[node_id].done:
                    self._launch(self.plan.nodes[node_id])
        try:
            await self._done
        except asyncio.CancelledError:
            self.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            raise
        return await self._finish(started_at)

    def cancel(self) -> None:
        """Abort the run: in-flight nodes are cancelled, nothing new starts."""
        if self._cancelled:
            return
        self._cancelled = True
        for task in list(self._tasks.values()):
            task.cancel()
            # A task cancelled before its first step never runs `_process`'s `finally`.
            task.add_done_callback(self._task_done)
        self._check_done()

    def interrupt(self) -> None:
        """Stop the run to go on later (`resume`): it ends ``interrupted``, not ``cancelled``."""
        self._interrupted = True
        self.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    # -- scheduling -----------------------------------------------------------------------

    def _launch(self, node: PlanNode) -> None:
        """Start a task for a ready node, or queue it while ``max_concurrency`` nodes run.

        A slot is held while a node is being settled, not while its result is committed."""
        if self._running >= self._limit:
            self._ready.append(node)
            return
        self._running += 1
        self._tasks[node.id] = asyncio.create_task(self._process(node))

    def _free_slot(self) -> None:
        self._running -= 1
        while self._ready and not self._cancelled and self._running < self._limit:
            self._launch(self._ready.popleft())

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """For tasks cancelled before their first step, whose `finally` never runs."""
        for node_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[node_id]
                self._check_done()
                return

    def _check_done(self) -> None:
        done = not self._tasks and (self._remaining == 0 or self._cancelled)
        if done and self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def _process(self, first: PlanNode) -> None:
        """Settle ``first`` and go on in this task with one successor it made ready (the others
        get tasks of their own): a chain costs one task, not one per node. Only without a store:
        with one, a successor starts while its predecessor's result is being committed."""
        slot = [True]  # whether this task still holds its slot

        def free() -> None:
            if slot[0]:
                slot[0] = False
                self._free_slot()

        node: PlanNode | None = first
        inline = 0
        try:
            while node is not None and not (inline and self._cancelled):
                may_inline = self._store is None and inline < MAX_INLINE
                node = await self._process_one(node, may_inline, free)
                inline += 1
        finally:
            free()
            self._tasks.pop(first.id, None)
            self._check_done()

    async def _process_one(
        self, node: PlanNode, may_inline: bool, free_slot: Callable[[], None]
    ) -> PlanNode | None:
        """Settle one node, start what it unblocks, then commit its result and announce it.

        Successors start while the result is being committed (commits are FIFO, so a result is
        never durable before the results it was computed from); the event announcing a result
        goes out only once it is committed.
        """
        state = self.states[node.id]
        try:
            await self._settle(node, state)
        except asyncio.CancelledError:
            state.status = "cancelled"
            state.finished_at = now()
            self._blocked.add(node.id)
            return None
        follow: PlanNode | None = None
        for successor in self._settled(node, state):
            if self._cancelled:
                continue
            if follow is None and may_inline:
                follow = self.plan.nodes[successor]
            else:
                self._launch(self.plan.nodes[successor])
        if self._store is not None:
            free_slot()
            if self._remaining == 0 and len(self._tasks) == 1 and not self._cancelled:
                self._last = (node.id, state)  # the last one: committed with the run's end
                return None
            try:
                await self._store.node_finished(self.run_id, node.id, state)
            except asyncio.CancelledError:
                return None  # the run was cancelled; the write itself goes on
            except Exception as exc:  # noqa: BLE001 - a storage failure ends the whole run
                self._log.exception("run aborted", node_id=node.id)
                self._fatal = f"run aborted at node {node.id}: {describe(exc)}"
                self.cancel()
                return None
        self._events.result(node.id, state)
        return follow

    def _settled(self, node: PlanNode, state: NodeState) -> list[str]:
        """Account for a node that reached its final state; returns the successors now ready."""
        self.states[node.id] = state
        if state.status in _TERMINAL_FAILURES or state.reason.startswith("upstream failed"):
            self._blocked.add(node.id)
        self._remaining -= 1
        ready = []
        for successor in node.successors:
            self._waiting[successor] -= 1
            if self._waiting[successor] == 0:
                ready.append(successor)
        return ready

    async def take_over(self) -> dict[str, list[str]]:
        """Take over every reusable result whose upstream is taken over too, before any node
        runs; returns the nodes taken over by the run that computed their result (once, then
        the same answer). A caller storing the run calls it first, to store these references
        with the run's row: a rerun that changes one leaf of a big workflow then records the
        rest in the same step.

        The executor's states and counts are set once, for the nodes left to run."""
        if self._taken is not None:
            return self._taken
        taken: dict[str, list[str]] = {}
        if self._reuse:
            taken = await take_over(
                self.plan,
                self.states,
                self._waiting,
                self._reuse,
                changed=self._changed,
                force=self._force,
                key_if_ready=self._key_if_ready,
            )
            self._taken_at = now()
            self._remaining -= sum(len(nodes) for nodes in taken.values())
        self._taken = taken
        return taken

    def run_states(self) -> RunStates:
        """The node states as users see them: a result taken over, as taken over (see
        `RunStates`); ``states`` holds it as its prior state."""
        return RunStates(self.states, self._waiting.keys() if self._reuse else None, self._taken_at)

    async def _key_if_ready(self, node: PlanNode) -> str | None:
        """The node's cache key, made as it would be to run it; None when it cannot run."""
        state = NodeState()
        if node.node_type.reads_outside_world:
            prepared = await self._prepare(node, state)
            return None if isinstance(prepared, str) else state.cache_key
        gathered = gather(node, self.states, self._blocked)  # the key alone: no instance
        return None if isinstance(gathered, str) else cache_key(node, gathered[1], None)

    async def _finish(self, started_at: datetime) -> RunResult:
        finished_at = now()
        for node_id in self._waiting:  # the nodes this run settles (not those taken over)
            state = self.states[node_id]
            if not state.done:
                state.status = "cancelled"
                state.finished_at = finished_at
            if state.status == "cancelled" and self._store is not None and not self._fatal:
                try:
                    await self._store.node_finished(self.run_id, node_id, state)
                except Exception as exc:  # noqa: BLE001 - reported as the run's error
                    self._fatal = f"storing node {node_id} failed: {describe(exc)}"
        outputs = run_outputs(self.plan, self.states)
        status, error = run_status(
            self._waiting, self.states, cancelled=self._cancelled, fatal=self._fatal
        )
        if status == "cancelled" and self._interrupted:
            status = "interrupted"
        if self._store is None:
            self._events.run_finished(status, outputs, error)
        else:
            await self._commit_end(self._store, status, outputs, error, finished_at)
        return RunResult(
            id=self.run_id,
            status=status,
            inputs=self.inputs,
            outputs=outputs,
            nodes=self.run_states(),
            started_at=started_at,
            finished_at=finished_at,
            error=error,
        )

    async def _commit_end(
        self,
        store: ResultStore,
        status: RunStatus,
        outputs: dict[str, Any],
        error: str | None,
        finished_at: datetime,
    ) -> None:
        """Commit how the run ended, with the last node's result when it was kept for this (a
        transaction fewer), then announce them: the events are stored in the same commit."""
        events = self._events.hold()
        if self._last is not None:
            self._events.result(*self._last)
        self._events.run_finished(status, outputs, error)
        try:
            await store.run_finished(
                self.run_id,
                last=self._last,
                events=events,
                status=status,
                outputs=outputs,
                error=error,
                finished_at=finished_at,
                last_seq=self._events.seq,
            )
        except BaseException:
            self._events.discard()  # none of it is stored: none of it is announced
            raise
        self._events.release()

    # -- one node -------------------------------------------------------------------------

    async def _settle(self, node: PlanNode, state: NodeState) -> None:
        prepared = await self._prepare(node, state)
        if isinstance(prepared, str):
            if state.error is not None:
                fail(state, state.error)
            else:
                state.status, state.reason, state.finished_at = "skipped", prepared, now()
            return
        prior = self._reuse.get(node.id)
        if prior is not None and reusable(node, state.cache_key, prior, self._force):
            state.take_over(prior, now())
            return
        state.reason = reason_to_execute(
            node, prior, self.states, force=self._force, reasons=self._reasons, reuse=self._reuse
        )
        await execute_node(node, state, *prepared, events=self._events)

    async def _prepare(
        self, node: PlanNode, state: NodeState
    ) -> tuple[NodeType, dict[str, Any], NodeContext] | str:
        """Gather the inputs, make the node and its cache key; or say why it cannot run (a skip
        reason, or with ``state.error`` set, a failure)."""
        gathered = gather(node, self.states, self._blocked)
        if isinstance(gathered, str):
            return gathered
        inputs, input_digests = gathered
        context = NodeContext(
            run_id=self.run_id,
            node_id=node.id,
            attempt=0,
            run_inputs=self.inputs,
            emit_token=self._events.token_emitter(node.id),
            workspace=self._workspace,
            models=self._models,
        )
        try:
            instance, fingerprint = await instantiate(node, inputs, context)
        except Exception as exc:  # noqa: BLE001 - a node's own set-up failed
            state.error = describe(exc)
            return state.error
        state.cache_key = cache_key(node, input_digests, fingerprint)
        return instance, inputs, context
