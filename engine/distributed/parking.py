"""Nodes that wait for a person's answer on workers (SPEC §16), as the `Scheduler` keeps them:
a node whose code asked is parked (in flight no more, not settled, its successors waiting with
it), its run waits once nothing of it is in flight, and an answer, the end of its wait or a
cancel settles it on the queue, once."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from engine.distributed import statements as sql
from engine.distributed.dispatcher import Dispatcher, NodeJob
from engine.distributed.progress import Collected, advance, finish_run, move_on
from engine.distributed.results import store_result
from engine.documents.plan import Plan
from engine.errors import Conflict
from engine.execution.results import NodeState

__all__ = ["ParkedNodes"]


class ParkedNodes:
    """The part of `Scheduler` that parks waiting nodes and settles them."""

    dispatcher: Dispatcher

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        raise NotImplementedError

    async def park(
        self,
        job: NodeJob,
        state: NodeState,
        attempt: int,
        question: dict[str, Any],
        *,
        plan: Plan,
        tokens: Sequence[str] = (),
    ) -> bool:
        """Commit a node that waits for an answer, if ``attempt`` is still its current one: its
        `waiting` state, with the `node.waiting` event saying what it asks; its successors
        wait with it, and once nothing of the run is in flight the run waits. False (nothing
        written) when the node was taken over or settled by someone else."""
        collected = Collected(job.run_id)
        collected.tokens(job.node_id, tokens)
        collected.events.append(collected.announcer.waiting(job.node_id, question))
        async with self._transaction() as connection:
            parked = await connection.fetchval(sql.PARK_NODE, job.run_id, job.node_id, attempt)
            if parked is None:
                return False
            await store_result(connection, job.run_id, job.node_id, state)
            advanced = await advance(connection, collected, in_flight=-1)
            await move_on(connection, job.run_id, advanced, plan)
        return True

    async def answer(self, run_id: str, node_id: str, state: NodeState, *, plan: Plan) -> int:
        """Settle a parked node with ``state`` (its answer, or the end of its wait) and go on
        with its run: what the node unblocks is queued, and a waiting run executes again (or
        ends, or waits on another node). Returns the number of the run's last event before
        this one's. `Conflict` when the node is not parked (answered meanwhile, say)."""
        collected = Collected(run_id)
        collected.announcer.result(node_id, state)
        async with self._transaction() as connection:
            if await connection.fetchval(sql.UNPARK_NODE, run_id, node_id) is None:
                raise Conflict(f"node {node_id} of run {run_id} is not waiting for an answer")
            await store_result(connection, run_id, node_id, state)
            advanced = await advance(
                connection, collected, settled=1, successors=plan.nodes[node_id].successors
            )
            await connection.execute(sql.GO_ON_RUN, run_id)
            await self.dispatcher.enqueue(connection, [NodeJob(run_id, n) for n in advanced.ready])
            await move_on(connection, run_id, advanced, plan)
        return advanced.last_seq - len(collected.events)

    async def cancel_waiting(self, run_id: str, *, plan: Plan) -> bool:
        """Cancel a run that waits for answers: its parked nodes and what follows them are
        cancelled and the run ends. False when it has nodes in flight after all (it is
        executing again: it stops as any run does, its cancel requested)."""
        async with self._transaction() as connection:
            await connection.fetch(sql.PARKED_NODES, run_id)  # locked before the run's row
            await connection.execute(sql.CANCEL_RUN, run_id)
            advanced = await advance(connection, Collected(run_id))
            if advanced.in_flight != 0:
                return False
            await finish_run(connection, run_id, advanced, plan)
        return True
