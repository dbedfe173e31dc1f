"""Runs that wait for a person (SPEC §16), as the run service handles them: the inbox, answers
(to a run waiting, or still executing other branches here), waits whose time is up, and going
on with a run that was waiting or interrupted. A run executing on workers has its waiting
nodes parked on the queue, which settles them (`Launcher.settle_waiting`) whether or not the
run still executes other branches. `RunService` is made of this and the rest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.documents.document import Workflow, from_builtins
from engine.documents.plan import Plan
from engine.errors import Conflict, NotFound
from engine.execution.events import Listener
from engine.execution.results import NodeState
from engine.execution.start import RunStart
from engine.runs.active import Answerer
from engine.runs.answers import answered_state, timed_out_state
from engine.runs.launch import RunHandle
from engine.runs.processes import QUEUE_OWNER
from engine.storage.keys import now
from engine.storage.repository import Store
from engine.storage.tables import RunRow
from engine.storage.waiting import Waiting, waiting_nodes

__all__ = ["WaitingRuns"]


class WaitingRuns:
    """The part of `RunService` that answers waiting nodes and resumes runs."""

    store: Store
    process: str

    @property
    def active(self) -> Mapping[str, RunHandle]:
        raise NotImplementedError

    def plan(self, workflow: Workflow) -> Plan:
        raise NotImplementedError

    async def _launch(
        self, start: RunStart, row: RunRow, listeners: Iterable[Listener]
    ) -> RunHandle:
        raise NotImplementedError

    async def inbox(self, *, owner_id: str | None = None) -> list[Waiting]:
        """The nodes waiting for an answer (of ``owner_id``'s runs), newest first."""
        return await waiting_nodes(self.store.sessions, owner_id=owner_id)

    async def answer(
        self,
        run_id: str,
        node_id: str,
        answer: Any,
        *,
        owner_id: str | None = None,
        listeners: Iterable[Listener] = (),
    ) -> RunHandle:
        """Give a waiting node its answer and resume its run from there: `AnswerInvalid` when
        the answer does not fit (the node keeps waiting), `Conflict` when the node does not
        wait (or another answer came first). A run still executing other branches here takes
        the answer as it goes on."""
        row = await self.store.run_row(run_id, owner_id=owner_id)

        def answered(plan: Plan, waiting: NodeState, states: Mapping[str, NodeState]) -> NodeState:
            return answered_state(plan, node_id, waiting, answer, states)

        return await self._settle_wait(row, node_id, answered, listeners)

    async def _settle_wait(
        self, row: RunRow, node_id: str, make: Answerer, listeners: Iterable[Listener]
    ) -> RunHandle:
        """Settle ``node_id``, which waits for an answer, with the state ``make`` gives (from
        the plan, its waiting state and the run's states): on the queue for a run on workers,
        in the execution of a run that still executes other branches here, else by resuming
        the stored waiting run. `Conflict` when it does not wait (or the run executes in
        another process, which settles it itself)."""
        if row.owner_process == QUEUE_OWNER:  # its node is parked on the queue: settled there
            plan, states, waiting = await self._waiting(row, node_id, ("running", "waiting"))
            return await self._settle_queued(
                row, plan, node_id, make(plan, waiting, states), listeners
            )
        handle = self.active.get(row.id)
        if row.status == "running" and handle is not None:
            taken = handle.answer(node_id, make)
            if taken:
                return handle
            if taken is None:
                raise Conflict(f"node {node_id} of run {row.id} is not waiting for an answer")
            await handle.wait()  # the run is ending `waiting`: answer it as stored
            row = await self.store.run_row(row.id)
        elif row.status == "running":
            raise Conflict(
                f"run {row.id} is executing in another process ({row.owner_process}): answer "
                "it there, or once it waits"
            )
        plan, states, waiting = await self._waiting(row, node_id, ("waiting",))
        answered = make(plan, waiting, states)
        return await self._go_on(row, plan, states, {node_id: answered}, listeners)

    async def _waiting(
        self, row: RunRow, node_id: str, statuses: tuple[str, ...]
    ) -> tuple[Plan, dict[str, NodeState], NodeState]:
        """The run's plan and node states, with the state of ``node_id``, which waits for an
        answer in a run that is in one of ``statuses``; else `Conflict`."""
        states = await self.store.node_states(row.id)
        waiting = states.get(node_id)
        if row.status not in statuses or waiting is None or waiting.status != "waiting":
            node = "not a node of it" if waiting is None else waiting.status
            raise Conflict(
                f"node {node_id} of run {row.id} is not waiting for an answer "
                f"(the run is {row.status}, the node {node})"
            )
        return self.plan(from_builtins(await self.store.snapshot(row))), states, waiting

    async def expire_waiting(self) -> list[str]:
        """End the waits whose deadline has passed, with their `default` or failed; the runs
        resumed. Any process may call it: each wait is ended once. Returns ``run:node``s."""
        ended = []
        moment = now().isoformat()
        for waiting in await waiting_nodes(self.store.sessions):
            if waiting.deadline is None or waiting.deadline > moment:
                continue
            try:
                await self._time_out(waiting)
            except (Conflict, NotFound):
                continue  # answered, or timed out by another process, meanwhile
            ended.append(f"{waiting.run_id}:{waiting.node}")
        return ended

    async def _time_out(self, waiting: Waiting) -> None:
        row = await self.store.run_row(waiting.run_id)

        def ended(plan: Plan, state: NodeState, states: Mapping[str, NodeState]) -> NodeState:
            node = plan.nodes[waiting.node]
            if waiting.on_timeout == "default":
                return answered_state(plan, waiting.node, state, node.params.get("default"), states)
            return timed_out_state(state, f"{node.settings.timeout_s or 0:g} s")

        await self._settle_wait(row, waiting.node, ended, ())

    async def _settle_queued(
        self,
        row: RunRow,
        plan: Plan,
        node_id: str,
        state: NodeState,
        listeners: Iterable[Listener],
    ) -> RunHandle:
        raise NotImplementedError

    async def _go_on(
        self,
        row: RunRow,
        plan: Plan,
        states: Mapping[str, NodeState],
        answered: Mapping[str, NodeState],
        listeners: Iterable[Listener],
        *,
        claimed: str = "waiting",
    ) -> RunHandle:
        """Resume a run that was ``claimed`` (interrupted, or waiting): its committed results
        stand, the ``answered`` nodes are settled, the rest executes."""
        done = {
            node_id: state
            for node_id, state in states.items()
            if state.status != "cancelled"
            and node_id not in answered
            and (node_id in plan.nodes or "/" in node_id)
        }
        if not await self.store.claim_for_resume(row.id, self.process, status=claimed):
            raise Conflict(f"run {row.id} is being resumed elsewhere")
        row.status, row.owner_process = "running", self.process
        start = RunStart(
            id=row.id,
            plan=plan,
            inputs=row.inputs,
            owner_id=row.owner_id,
            resuming=True,
            done=done,
            answered=answered,
            first_seq=await self.store.last_seq(row.id),
            trigger=row.trigger,
            replay=await self.store.replay(row),
        )
        return await self._launch(start, row, listeners)
