"""The async executor: runs a `Plan` node by node as inputs become ready, branches concurrently."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from engine.documents.plan import PlanNode, collection_paused
from engine.errors import Conflict, NodeFailure, NodeWaits, describe
from engine.execution.announcer import Announcer
from engine.execution.bodies import (
    NO_WAITS_INSIDE,
    BodyRun,
    Instance,
    answered,
    first_instances,
    reusable_instances,
    same_body_instances,
)
from engine.execution.events import Listener, RunStatus
from engine.execution.lifecycle import Prepared, RunScope, key_if_ready, parked, settle
from engine.execution.outcome import run_outputs, run_status
from engine.execution.results import NodeState, ResultStore, RunResult, RunStates
from engine.execution.start import RunStart
from engine.execution.takeover import take_over
from engine.nodes.body import BodyNode, body_of
from engine.settings import MAX_ITEMS
from engine.storage.keys import now

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_ITEMS",
    "MAX_INLINE",
    "Execution",
    "InProcessAttempts",
]

log = structlog.get_logger("nodeloom.executor")
T = TypeVar("T")

DEFAULT_CONCURRENCY = 32
DEFAULT_MAX_ITEMS = MAX_ITEMS  # instances a body node may run (NODELOOM_MAP_MAX_ITEMS)
MAX_INLINE = 64  # nodes one task settles in a row before yielding its place


class InProcessAttempts:
    """A node's attempts in this process (see `Attempts`): numbered here, announced at once;
    a cancelled run cancels the tasks themselves."""

    __slots__ = ("_events",)

    def __init__(self, events: Announcer) -> None:
        self._events = events

    async def begin(self, node_id: str, previous: int) -> int:
        self._events.node_started(node_id, previous + 1)
        return previous + 1

    def retrying(self, node_id: str, attempt: int, error: str) -> None:
        self._events.retrying(node_id, attempt, error)

    def run(self, work: Awaitable[T]) -> Awaitable[T]:
        return work  # awaited as it is: no coroutine of its own


class Execution:
    """One run of a plan, in this process. `execute` runs it to the end; `cancel` stops it from
    anywhere.

    The ``start``'s inputs must already be resolved (`engine.documents.inputs.resolve_inputs`).
    What it may reuse is taken over before anything runs (`take_over`); the results it
    committed before it was interrupted (``done``) stand and are not executed again.
    ``store`` commits each node result before the event announcing it goes to the
    ``listeners``. File nodes work in ``workspace``.
    """

    def __init__(
        self,
        start: RunStart,
        *,
        listeners: Iterable[Listener] = (),
        store: ResultStore | None = None,
        workspace: Path | None = None,
        models: ModelService | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        plan = start.plan
        self.start = start
        self.plan = plan
        self.inputs = dict(start.inputs)
        self.run_id = run_id = start.id
        reuse = start.reuse
        self._scope = RunScope(
            run_id=run_id,
            inputs=self.inputs,
            workspace=workspace or Path("workspace"),
            models=models,
            reuse=reuse,
            force=start.force,
            reasons=start.reasons,
            replay=start.replay,
            owner_id=start.owner_id,
        )
        # With results to reuse, `take_over` fills the states and counts.
        self.states = {} if reuse else {node_id: NodeState() for node_id in plan.nodes}
        self._events = Announcer(run_id, listeners, start.first_seq, store.event if store else None)
        self._attempts = InProcessAttempts(self._events)
        self._store = store
        self._limit = max_concurrency
        self._running = 0  # tasks holding a slot
        self._ready: deque[PlanNode] = deque()  # ready, waiting for a free slot
        # What each node this run settles waits for: how many of its predecessors.
        self._waiting = (
            {} if reuse else {n: len(node.predecessors) for n, node in plan.nodes.items()}
        )
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
        # The nodes by id: the plan's, and those of the bodies running (made a copy of the
        # plan's when the first body starts).
        self._nodes: dict[str, PlanNode] = plan.nodes
        self._max_items = max_items
        # The nodes inside bodies not settled yet: their scope, and what they are part of.
        self._inside: dict[str, Instance] = {}
        self._concluded: list[BodyRun] = []  # body nodes answered, to be committed
        # Results of bodies' nodes taken over while the run went on, by the run that made them:
        # stored by reference with its end.
        self._taken_later: dict[str, list[str]] = {}
        # Results inside bodies a resumed run committed before: they stand when their
        # instance is expanded again.
        self._inner_done = {node_id: s for node_id, s in start.done.items() if "/" in node_id}
        # Nodes waiting for a person's answer (SPEC §16): once nothing else can go on, the run
        # ends `waiting`, holding nothing; an answer resumes it (``start.answered``).
        self._parked: set[str] = set()
        for node_id, state in start.done.items():
            if "/" in node_id:
                continue
            if state.status == "waiting":
                self.states[node_id] = state
                self._parked.add(node_id)
            else:
                self._settled(plan.nodes[node_id], state)

    # -- public ---------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        started_at = now()
        self._done = asyncio.get_running_loop().create_future()
        reused = await self.take_over()
        self._events.run_started(self.plan.workflow.name, len(self.plan.nodes), reused)
        for node_id, answer in self.start.answered.items():  # committed, then announced
            self._settled(self.plan.nodes[node_id], answer)
            if self._store is not None:
                await self._store.node_finished(self.run_id, node_id, answer)
            self._events.result(node_id, answer)
        if self._cancelled or self._remaining == 0:
            self._done.set_result(None)
        else:
            for node_id, waiting in self._waiting.items():
                state = self.states[node_id]
                if waiting == 0 and not state.done and node_id not in self._parked:
                    self._launch(self._nodes[node_id])
            self._check_done()  # nothing to launch: every node left waits for an answer
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

    def answer(self, node_id: str, answered: NodeState) -> bool:
        """Settle a node waiting for an answer while the run goes on (other branches still
        executing): its result is committed and what it unblocks starts. False when the run is
        ending (it is about to be stored `waiting`: answer it then)."""
        if node_id not in self._parked:
            raise Conflict(f"node {node_id} of run {self.run_id} is not waiting for an answer")
        if self._cancelled or self._done is None or self._done.done():
            return False
        self._parked.discard(node_id)
        node = self._nodes[node_id]
        self._running += 1  # the answer's task holds a slot as any node's does

        async def conclude() -> None:
            slot = [True]

            def free() -> None:
                if slot[0]:
                    slot[0] = False
                    self._free_slot()

            try:
                follow = await self._conclude(node, answered, False, free)
                if follow is not None:
                    self._launch(follow)
            finally:
                free()
                self._tasks.pop(node_id, None)
                self._check_done()

        self._tasks[node_id] = asyncio.create_task(conclude())
        return True

    def waiting_state(self, node_id: str) -> NodeState | None:
        """The state of a node of the run that waits for an answer here, if it does."""
        return self.states[node_id] if node_id in self._parked else None

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
        done = not self._tasks and (
            self._remaining == 0 or self._cancelled or (bool(self._parked) and not self._ready)
        )
        if done and self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def _process(self, first: PlanNode) -> None:
        """Settle ``first`` and go on in this task with one successor it made ready (the others
        get tasks of their own), or else with a ready node waiting for a slot: a chain costs one
        task, and a fan of a thousand nodes as many tasks as may run at once. Only without a
        store: with one, a successor starts while its predecessor's result is being committed.
        """
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
                if node is None and may_inline and self._ready and not self._cancelled:
                    node = self._ready.popleft()  # its slot is this task's
        finally:
            free()
            self._tasks.pop(first.id, None)
            self._check_done()

    async def _process_one(
        self, node: PlanNode, may_inline: bool, free_slot: Callable[[], None]
    ) -> PlanNode | None:
        """Settle one node, start what it unblocks, then commit its result and announce it
        (and those of the body nodes that its end answered). A body node's body starts
        instead: the last of its nodes to settle answers it."""
        state = self.states[node.id]
        inside = self._inside.get(node.id)
        scope = self._scope if inside is None else inside.scope
        body: Prepared | None = None
        try:
            body = await settle(
                node,
                state,
                scope,
                self.states,
                attempts=self._attempts,
                emit_token=self._events.token_emitter(node.id),
            )
        except asyncio.CancelledError:
            state.cancel(now())
            return None
        except NodeWaits as waits:
            await self._park(node, state, waits.question, free_slot)
            return None
        except Exception as exc:  # noqa: BLE001 - a fault of the engine's own fails the node
            self._log.exception("node failed in the engine", node_id=node.id)
            state.fail(f"internal error: {describe(exc)}", now())
        if body is not None:
            await self._start_body(node, state, body, scope)
            follow = None
        else:
            follow = await self._conclude(node, state, may_inline, free_slot)
        while self._concluded:  # body nodes answered meanwhile: each concluded here
            if follow is not None:
                self._launch(follow)  # in a task of its own: this one goes on with them
            answered = self._concluded.pop()
            follow = await self._conclude(answered.node, answered.state, may_inline, free_slot)
        return follow

    async def _conclude(
        self, node: PlanNode, state: NodeState, may_inline: bool, free_slot: Callable[[], None]
    ) -> PlanNode | None:
        """Account for a node in its final state: start what it unblocks, commit its result,
        announce it. Returns a successor to settle next in this task, if it may."""
        follow: PlanNode | None = None
        for successor in self._settled(node, state):
            if self._cancelled:
                continue
            if follow is None and may_inline:
                follow = self._nodes[successor]
            else:
                self._launch(self._nodes[successor])
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

    async def _park(
        self,
        node: PlanNode,
        state: NodeState,
        question: dict[str, Any],
        free_slot: Callable[[], None],
    ) -> None:
        """A node that waits for a person's answer: committed `waiting`, announced with what it
        asks; its successors wait with it."""
        if node.id in self._inside:
            state.fail(NO_WAITS_INSIDE, now())
            await self._conclude(node, state, False, free_slot)
            return
        question = parked(node, state, question)
        self._parked.add(node.id)
        free_slot()
        event = self._events.waiting(node.id, question)
        if self._store is not None:  # the question is committed with the node's state
            try:
                await self._store.node_finished(self.run_id, node.id, state, [event])
            except asyncio.CancelledError:
                return
            except Exception as exc:  # noqa: BLE001 - a storage failure ends the whole run
                self._log.exception("run aborted", node_id=node.id)
                self._fatal = f"run aborted at node {node.id}: {describe(exc)}"
                self.cancel()
                return
        self._events.stored(event)

    # -- bodies ---------------------------------------------------------------------------

    async def _start_body(
        self, node: PlanNode, state: NodeState, prepared: Prepared, scope: RunScope
    ) -> None:
        """Start a body node's body: its first instances, as many as may run at once. In a
        rerun, the instances whose every node may be taken over are taken over whole first."""
        state.status, state.started_at, state.attempt = "running", now(), 1
        self._events.node_started(node.id, 1)
        instance, body = prepared.instance, node.body
        assert isinstance(instance, BodyNode)
        assert body is not None
        try:
            first = first_instances(node, instance, prepared.inputs, self._max_items)
        except NodeFailure as exc:
            state.fail(exc.detail, now())
            self._concluded.append(
                BodyRun(
                    node, state, instance=instance, inputs=prepared.inputs, first=[], scope=scope
                )
            )
            return
        run = BodyRun(
            node, state, instance=instance, inputs=prepared.inputs, first=first, scope=scope
        )
        if scope.reuse and not instance.sequential and node.id not in scope.force:
            with collection_paused():  # states of every node of every item, that live on
                run.taken(await self._instances_taken(run, first))
        self._advance(run)

    async def _instances_taken(
        self, run: BodyRun, first: list[dict[str, Any]]
    ) -> list[tuple[int, str, dict[str, NodeState]]]:
        """Take over the instances of a body whose every node's earlier result stands (see
        `reusable_instances`); returns them (index, path prefix, their nodes' results by
        path). Their nodes' results are held as they are and stored by reference with the
        run's end."""
        changed = self.start.changed
        if changed is not None and body_of(run.node.id) not in changed:  # the same body
            standing = same_body_instances(run, first)  # at once: nothing to await
        else:
            standing = [
                found
                async for found in reusable_instances(
                    run, first, key_if_ready=self._key_if_ready
                )
            ]
        states, later = self.states, self._taken_later
        origin, paths = "", later.setdefault("", [])  # the last result's run, and its paths
        add = paths.append
        for _, _, priors in standing:
            states.update(priors)
            for node_id, prior in priors.items():
                if (prior.origin_run_id or "") != origin:
                    origin = prior.origin_run_id or ""
                    add = later.setdefault(origin, []).append
                add(node_id)
        if not later[""]:
            del later[""]
        return standing

    def _advance(self, run: BodyRun) -> None:
        """Start the instances that may start; answer the body node when none is left."""
        if not self._cancelled:
            for instance in run.next_instances():
                self._expand(instance)
        if run.done and run.state.status == "running":
            answered(run.node, run.state, self.run_id, run.answer)
            self._concluded.append(run)

    def _expand(self, instance: Instance) -> None:
        """Make one instance's nodes nodes of the run and start those that wait for nothing."""
        if self._nodes is self.plan.nodes:
            self._nodes = dict(self.plan.nodes)
        nodes, states, waiting, inside = self._nodes, self.states, self._waiting, self._inside
        for node in instance.nodes:
            nodes[node.id] = node
            states[node.id] = NodeState()
            waiting[node.id] = len(node.predecessors)
            inside[node.id] = instance
        self._remaining += len(instance.nodes)
        if not instance.nodes:
            self._instance_ended(instance)
        if self._inner_done:  # a resumed run: what the instance committed before stands
            for node in instance.nodes:
                state = self._inner_done.pop(node.id, None)
                if state is not None:
                    self._settled(node, state)
        for node in instance.nodes:
            if waiting[node.id] == 0 and not states[node.id].done:
                self._launch(node)

    def _instance_ended(self, instance: Instance) -> None:
        run = instance.run
        run.ended(instance.index, instance.prefix, self.states)
        self._advance(run)

    def _settled(self, node: PlanNode, state: NodeState) -> list[str]:
        """Account for a node that reached its final state; returns the successors now ready."""
        self.states[node.id] = state
        self._remaining -= 1
        ready = []
        waiting = self._waiting
        for successor in node.successors:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                ready.append(successor)
        if self._inside:
            instance = self._inside.pop(node.id, None)
            if instance is not None:  # a node of a body's instance
                instance.left -= 1
                if instance.left == 0:
                    self._instance_ended(instance)
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
        if self.start.reuse:
            taken = await take_over(
                self.plan,
                self.states,
                self._waiting,
                self.start.reuse,
                changed=self.start.changed,
                force=self.start.force,
                key_if_ready=self._key_if_ready,
            )
            self._taken_at = now()
            top_level = self.plan.nodes  # not the nodes of the bodies taken over with them
            self._remaining -= sum(n in top_level for nodes in taken.values() for n in nodes)
        self._taken = taken
        return taken

    def run_states(self) -> RunStates:
        """The node states as users see them: a result taken over, as taken over (see
        `RunStates`); ``states`` holds it as its prior state."""
        own = self._waiting.keys() if self.start.reuse else None
        return RunStates(self.states, own, self._taken_at)

    async def _key_if_ready(
        self,
        node: PlanNode,
        scope: RunScope | None = None,
        states: Mapping[str, NodeState] | None = None,
    ) -> str | None:
        """The node's cache key, made as it would be to run it (in ``scope``, after
        ``states``: the run's by default); None when it cannot run."""
        return await key_if_ready(
            node, scope or self._scope, self.states if states is None else states
        )

    async def _finish(self, started_at: datetime) -> RunResult:
        finished_at = now()
        waiting = bool(self._parked) and not self._cancelled and not self._fatal
        for node_id in self._waiting:  # the nodes this run settles (not those taken over)
            state = self.states[node_id]
            if not state.done and not waiting:  # a waiting run's nodes wait with it
                state.cancel(finished_at)
            if state.status == "cancelled" and self._store is not None and not self._fatal:
                try:
                    await self._store.node_finished(self.run_id, node_id, state)
                except Exception as exc:  # noqa: BLE001 - reported as the run's error
                    self._fatal = f"storing node {node_id} failed: {describe(exc)}"
        outputs = run_outputs(self.plan, self.states)
        top_level = (node_id for node_id in self._waiting if node_id in self.plan.nodes)
        status, error = run_status(
            top_level, self.states, cancelled=self._cancelled, fatal=self._fatal
        )
        if status == "cancelled" and self._interrupted:
            status = "interrupted"
        ended_at: datetime | None = finished_at
        if waiting:
            status, error, ended_at = "waiting", None, None
        if self._store is None:
            self._events.run_finished(status, outputs, error)
        else:
            await self._commit_end(self._store, status, outputs, error, ended_at)
        return RunResult(
            id=self.run_id,
            status=status,
            inputs=self.inputs,
            outputs=outputs,
            nodes=self.run_states(),
            started_at=started_at,
            finished_at=ended_at,
            error=error,
        )

    async def _commit_end(
        self,
        store: ResultStore,
        status: RunStatus,
        outputs: dict[str, Any],
        error: str | None,
        finished_at: datetime | None,
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
                reused=self._taken_later,
                # Not after a storage failure: a state held here may not be stored.
                reusable=None if status == "waiting" or self._fatal else self.states,
            )
        except BaseException:
            self._events.discard()  # none of it is stored: none of it is announced
            raise
        self._events.release()
