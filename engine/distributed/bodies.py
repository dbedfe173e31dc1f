"""Bodies on workers (SPEC §12), as the `Scheduler` keeps them: a body node, once prepared on a
worker, is *expanded*: its run is stored (`body_runs`: its inputs and its `Tally`), one row per
instance (`body_instances`), and the first instances' nodes become nodes of the run, each a job
like any other. The body node itself holds no job and no worker meanwhile.

The settle of the last node of an instance (counted down in the same transaction, under the
run's lock) ends the instance: its outcome is stored, the next instances start, and once none
is left the body node is answered there and then, which unblocks its successors (and may end
the instance it is itself part of).

An instance's `input` and `output` nodes read and write nothing but their values: each is
settled in the transaction that makes it ready (an input as its instance starts, an output
with its predecessor's settle), announced and stored as any node is, rather than being a job
of its own; an item of a map then costs the queue what one plain node does."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec

from engine.distributed import statements as sql
from engine.distributed.dispatcher import Dispatcher, NodeJob
from engine.distributed.plans import RunSpec
from engine.distributed.progress import Advanced, Collected, advance, move_on
from engine.distributed.results import load_states, store_result
from engine.documents.plan import Plan, PlanNode
from engine.execution.bodies import Tally, answered, instance_prefix, limit_of, outcome_of
from engine.execution.executor import InProcessAttempts
from engine.execution.lifecycle import RunScope, settle
from engine.execution.results import NodeState
from engine.nodes.body import BodyNode, Outcome

__all__ = ["BodyInstances", "Expansion"]

_encode = msgspec.json.Encoder().encode
_decode_outcome = msgspec.json.Decoder(Outcome).decode
_decode_tally = msgspec.json.Decoder(Tally).decode
SETTLED_HERE = frozenset({"input", "output"})  # the roles of nodes settled where they get ready

# The body node, fenced on its attempt as a settle is: `expanded` (no job, not settled).
EXPAND_NODE = """
    UPDATE node_executions AS n SET status = 'expanded', updated_at = now()
    FROM dispatched_runs AS d
    WHERE n.run_id = $1 AND n.node_id = $2 AND n.status IN ('queued', 'running')
      AND n.attempt = $3 AND d.run_id = n.run_id
    RETURNING d.cancel_requested
"""
CONCLUDE_NODE = """
    UPDATE node_executions SET status = 'done', updated_at = now()
    WHERE run_id = $1 AND node_id = $2 AND status = 'expanded'
    RETURNING node_id
"""
INSERT_BODY_RUN = """
    INSERT INTO body_runs (run_id, node_id, inputs, tally)
    VALUES ($1, $2, $3::text::json, $4::text::json)
"""
BODY_RUN = "SELECT inputs::text, tally::text FROM body_runs WHERE run_id = $1 AND node_id = $2"
SAVE_TALLY = "UPDATE body_runs SET tally = $3::text::json WHERE run_id = $1 AND node_id = $2"
INSERT_INSTANCES = """
    INSERT INTO body_instances (run_id, prefix, node_id, position, status, unsettled, inputs,
                                outcome)
    SELECT $1, prefix, $2, position, status, $3, inputs::json, outcome::json
    FROM unnest($4::text[], $5::int[], $6::text[], $7::text[], $8::text[])
        AS e(prefix, position, status, inputs, outcome)
"""
START_INSTANCES = """
    UPDATE body_instances AS b SET status = 'running'
    FROM (SELECT prefix FROM body_instances
          WHERE run_id = $1 AND node_id = $2 AND status = 'pending'
          ORDER BY position LIMIT $3) AS p
    WHERE b.run_id = $1 AND b.prefix = p.prefix
    RETURNING b.prefix, b.position, b.inputs::text
"""
# The nodes of started instances not settled as they started.
SET_UNSETTLED = """
    UPDATE body_instances AS b SET unsettled = e.unsettled
    FROM unnest($2::text[], $3::int[]) AS e(prefix, unsettled)
    WHERE b.run_id = $1 AND b.prefix = e.prefix
"""
SAVE_PROGRESS = """
    UPDATE node_results SET progress = $3::text::json WHERE run_id = $1 AND node_id = $2
"""
# A node settled in the transaction that made it ready (`SETTLED_HERE`), instead of queued.
SETTLED_HERE_NODE = """
    UPDATE node_executions SET status = 'done', updated_at = now()
    WHERE run_id = $1 AND node_id = $2 AND status = 'queued'
    RETURNING node_id
"""
COUNT_DOWN = """
    UPDATE body_instances SET unsettled = unsettled - 1
    WHERE run_id = $1 AND prefix = $2 AND status = 'running'
    RETURNING unsettled, node_id, position
"""
END_INSTANCE = """
    UPDATE body_instances SET status = 'ended', outcome = $3::text::json
    WHERE run_id = $1 AND prefix = $2
"""
OUTCOMES = """
    SELECT outcome::text FROM body_instances
    WHERE run_id = $1 AND node_id = $2 AND status = 'ended'
"""
INSTANCE_INPUTS = "SELECT inputs::text FROM body_instances WHERE run_id = $1 AND prefix = $2"
# Results of an instance's nodes taken over from the run a rerun comes from, by reference.
INSERT_REUSED = """
    INSERT INTO reused_results (run_id, origin_run_id, nodes) VALUES ($1, $2, $3::text::json)
    ON CONFLICT (run_id, origin_run_id) DO UPDATE SET nodes = (
        SELECT json_agg(value) FROM (
            SELECT json_array_elements(reused_results.nodes) AS value
            UNION ALL SELECT json_array_elements(excluded.nodes)
        ) AS e
    )
"""


class Expansion(msgspec.Struct):
    """A body node prepared on a worker, to be expanded: its instance, its inputs, the body
    inputs of its first instances, and those of them a rerun takes over whole (by index:
    their nodes' earlier states, by path)."""

    instance: BodyNode
    inputs: dict[str, Any]
    first: list[dict[str, Any]]
    taken: dict[int, dict[str, NodeState]] = {}


def _no_tokens(text: str) -> None:
    """Nodes settled in a transaction stream nothing."""


class _BodyRun:
    """A body node's run as a transaction reads it: the node, its inputs, its tally."""

    def __init__(self, node: PlanNode, inputs: dict[str, Any], tally: Tally) -> None:
        assert node.body is not None
        self.node = node
        self.body: Plan = node.body
        self.inputs = inputs
        self.tally = tally
        instance = node.node_type(node.params)
        assert isinstance(instance, BodyNode)
        self.instance = instance

    @property
    def pending(self) -> int:
        """Instances known and not started: each is pending, running or done."""
        return self.tally.count - self.tally.running - self.tally.done

    def answer(self, outcomes: list[Outcome]) -> dict[str, Any]:
        return self.tally.answer(self.instance, self.inputs, outcomes, self.body.body_ports())


class _Step:
    """One transaction's work on a run's bodies (its row locked): the events it collects, what
    it changes of the run's counters besides a settle of its own, and the instances that ended
    and are still to be gone on from (one after the other, not recursively: a long loop
    ends many in one transaction)."""

    def __init__(self, connection: asyncpg.Connection, spec: RunSpec, *, cancelling: bool) -> None:
        self.connection = connection
        self.run_id = spec.run_id
        self.spec = spec
        self.cancelling = cancelling  # the run is being cancelled: nothing more starts
        self.collected = Collected(spec.run_id)
        self.settled = 0  # negative: nodes added
        self.in_flight = 0
        self.ready: list[str] = []  # nodes to queue
        self._ended: deque[tuple[str, str, int]] = deque()  # prefix, body node, position

    @property
    def moved(self) -> bool:
        return bool(self.ready or self.collected.events or self.settled or self.in_flight)

    async def advance(self, dispatcher: Dispatcher) -> Advanced:
        """Go on from the instances that ended, move the run's counters and store the events,
        queue what is ready, then the run's end or its wait if that came."""
        while self._ended:
            await self._end(*self._ended.popleft())
        advanced = await advance(
            self.connection, self.collected, settled=self.settled, in_flight=self.in_flight
        )
        await dispatcher.enqueue(self.connection, [NodeJob(self.run_id, n) for n in self.ready])
        await move_on(self.connection, self.run_id, advanced, self.spec.plan)
        return advanced

    async def here(
        self, node: PlanNode, scope: RunScope, states: Mapping[str, NodeState]
    ) -> NodeState:
        """Settle a node of `SETTLED_HERE` now, its predecessors' states in ``states``."""
        state = NodeState()
        await settle(
            node, state, scope, states, attempts=InProcessAttempts(self.collected.announcer),
            emit_token=_no_tokens,
        )  # fmt: skip
        self.collected.announcer.result(node.id, state)
        await store_result(self.connection, self.run_id, node.id, state)
        return state

    async def settled_inside(self, path: str, state: NodeState, ready: Sequence[str]) -> None:
        """A node inside a body settled in ``state``, and ``ready`` became ready: those that
        are settled here are, the rest are queued; each counts down its instance."""
        await self.count_down(path)
        states = {path: state}
        later = deque(ready)
        while later:
            node = self.spec.nodes[later.popleft()]
            if node.node_type.role not in SETTLED_HERE:
                self.ready.append(node.id)
                continue
            if await self.connection.fetchval(SETTLED_HERE_NODE, self.run_id, node.id) is None:
                continue
            wanted = [p for p in node.predecessors if p not in states]
            states.update(await load_states(self.connection, self.run_id, wanted))
            scope = self.spec.scope_at(node.id, None)
            states[node.id] = await self.here(node, scope, states)
            advanced = await advance(
                self.connection,
                Collected(self.run_id),
                settled=1,
                in_flight=-1,
                successors=node.successors,
                cancelling=self.cancelling,
            )
            later.extend(advanced.ready)
            await self.count_down(node.id)

    async def count_down(self, path: str) -> None:
        """A node inside a body settled: its instance ends after its last node."""
        prefix = instance_prefix(path)
        found = await self.connection.fetchrow(COUNT_DOWN, self.run_id, prefix)
        if found is not None and found["unsettled"] == 0:
            self._ended.append((prefix, found["node_id"], found["position"]))

    async def _end(self, prefix: str, body_node: str, position: int) -> None:
        """An instance ended: its outcome, what its body node counts, then go on with it."""
        connection, run_id = self.connection, self.run_id
        node = self.spec.nodes[body_node]
        assert node.body is not None
        states = await load_states(connection, run_id, [prefix + n for n in node.body.nodes])
        outcome = outcome_of(node.body, position, prefix, states)
        await connection.execute(END_INSTANCE, run_id, prefix, _encode(outcome).decode())
        inputs, stored = await connection.fetchrow(BODY_RUN, run_id, node.id)
        run = _BodyRun(node, msgspec.json.decode(inputs), _decode_tally(stored))
        following = run.tally.ended(run.instance, run.inputs, outcome)
        if following is not None:
            index = run.tally.count - 1
            await connection.execute(
                INSERT_INSTANCES,
                run_id,
                node.id,
                len(node.body.nodes),
                [run.instance.instance_path(node.id, index)],
                [index],
                ["pending"],
                [_encode(following).decode()],
                [None],
            )
        await self.go_on(run, None)

    async def go_on(self, run: _BodyRun, state: NodeState | None) -> None:
        """Start the body node's instances that may start, or answer it when none is left
        (``state``: the body node's, None to read it when needed)."""
        connection, run_id, node, tally = self.connection, self.run_id, run.node, run.tally
        pending = run.pending
        starting = 0 if self.cancelling else tally.starting(pending, limit_of(run.instance))
        if starting:
            rows = await connection.fetch(START_INSTANCES, run_id, node.id, starting)
            await self._start(sorted(rows, key=lambda row: row["position"]))
        progress = tally.progress()
        if not tally.finished(pending - starting):
            await connection.execute(SAVE_TALLY, run_id, node.id, _encode(tally).decode())
            if state is not None:  # the body node's first state
                state.progress = progress
                await store_result(connection, run_id, node.id, state)
            else:
                await connection.execute(SAVE_PROGRESS, run_id, node.id, _encode(progress).decode())
            return
        if state is None:
            state = (await load_states(connection, run_id, [node.id]))[node.id]
        state.progress = progress
        outcomes = [
            _decode_outcome(found) for (found,) in await connection.fetch(OUTCOMES, run_id, node.id)
        ]
        answered(node, state, run_id, lambda: run.answer(outcomes))
        await self._conclude(node, state)

    async def _start(self, rows: list[asyncpg.Record]) -> None:
        """Make the nodes of instances that start nodes of the run: their `SETTLED_HERE`
        nodes ready at once are settled, those of the others ready at once queued."""
        ids, statuses, waits = [], [], []
        prefixes, unsettled = [], []
        for prefix, position, inputs in rows:
            nodes = self.spec.nodes.instance(prefix)
            scope = self.spec.scope_at(prefix, msgspec.json.decode(inputs))
            waiting = {inner.id: len(inner.predecessors) for inner in nodes.values()}
            states: dict[str, NodeState] = {}
            later = deque(inner for inner in nodes.values() if not inner.predecessors)
            while later:
                inner = later.popleft()
                if inner.node_type.role not in SETTLED_HERE:
                    continue
                states[inner.id] = await self.here(inner, scope, states)
                for successor in inner.successors:
                    waiting[successor] -= 1
                    if waiting[successor] == 0:
                        later.append(nodes[successor])
            for inner in nodes.values():
                ids.append(inner.id)
                waits.append(waiting[inner.id])
                if inner.id in states:
                    statuses.append("done")
                elif waiting[inner.id]:
                    statuses.append("waiting")
                else:
                    statuses.append("queued")
                    self.ready.append(inner.id)
                    self.in_flight += 1
            left = len(nodes) - len(states)
            self.settled -= left
            prefixes.append(prefix)
            unsettled.append(left)
            if left == 0:
                self._ended.append((prefix, self.spec.nodes.body_node_of(prefix), position))
        await self.connection.execute(sql.INSERT_NODES, self.run_id, ids, statuses, waits)
        await self.connection.execute(SET_UNSETTLED, self.run_id, prefixes, unsettled)

    async def _conclude(self, node: PlanNode, state: NodeState) -> None:
        """Settle an answered body node: its result, what it unblocks, and the instance it is
        part of counted down."""
        connection, run_id = self.connection, self.run_id
        if await connection.fetchval(CONCLUDE_NODE, run_id, node.id) is None:
            return
        await store_result(connection, run_id, node.id, state)
        self.collected.announcer.result(node.id, state)
        advanced = await advance(
            connection,
            Collected(run_id),
            settled=1,
            successors=node.successors,
            cancelling=self.cancelling,
        )
        self.ready.extend(advanced.ready)  # counted in flight by the statement
        if "/" in node.id:
            await self.count_down(node.id)


class BodyInstances:
    """The part of `Scheduler` that runs bodies on workers."""

    dispatcher: Dispatcher

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        raise NotImplementedError

    async def expand(
        self, job: NodeJob, attempt: int, state: NodeState, expansion: Expansion, *, spec: RunSpec
    ) -> bool:
        """Expand the body node of ``job`` while ``attempt`` is still its current one: store its
        run and instances, start the first ones (or answer it at once). False (nothing written)
        when the node was taken over or settled meanwhile."""
        node = spec.nodes[job.node_id]
        run = _BodyRun(node, expansion.inputs, Tally(len(expansion.first)))
        run.instance = expansion.instance
        prefixes, statuses, inputs = [], [], []
        outcomes: list[str | None] = []
        reused: dict[str, list[str]] = {}
        done_nodes: list[str] = []
        for index, first in enumerate(expansion.first):
            prefix = run.instance.instance_path(node.id, index)
            priors = expansion.taken.get(index)
            prefixes.append(prefix)
            inputs.append(_encode(first).decode())
            if priors is None:
                statuses.append("pending")
                outcomes.append(None)
                continue
            outcome = outcome_of(run.body, index, prefix, priors)
            run.tally.running += 1
            run.tally.ended(run.instance, run.inputs, outcome)
            statuses.append("ended")
            outcomes.append(_encode(outcome).decode())
            for path, prior in priors.items():
                reused.setdefault(prior.origin_run_id or "", []).append(path)
                done_nodes.append(path)
        async with self._transaction() as connection:
            cancelling = await connection.fetchval(EXPAND_NODE, job.run_id, node.id, attempt)
            if cancelling is None:
                return False
            step = _Step(connection, spec, cancelling=cancelling)
            step.collected.announcer.node_started(node.id, state.attempt)
            await connection.execute(
                INSERT_BODY_RUN,
                job.run_id,
                node.id,
                _encode(run.inputs).decode(),
                _encode(run.tally).decode(),
            )
            await connection.execute(
                INSERT_INSTANCES,
                job.run_id,
                node.id,
                len(run.body.nodes),
                prefixes,
                list(range(len(prefixes))),
                statuses,
                inputs,
                outcomes,
            )
            if done_nodes:
                done = ["done"] * len(done_nodes)
                await connection.execute(
                    sql.INSERT_NODES, job.run_id, done_nodes, done, [0] * len(done_nodes)
                )
                for origin, nodes in reused.items():
                    await connection.execute(
                        INSERT_REUSED, job.run_id, origin, _encode(nodes).decode()
                    )
            step.in_flight -= 1  # the body node's own job
            await step.go_on(run, state)
            await step.advance(self.dispatcher)
        return True

    async def inside_settled(
        self,
        connection: asyncpg.Connection,
        path: str,
        state: NodeState,
        advanced: Advanced,
        *,
        spec: RunSpec,
    ) -> None:
        """After the settle of a node inside a body in ``state`` (its run's row locked,
        ``advanced`` what the settle left): count it down in its instance, settle what it made
        ready that is settled here and queue the rest, and go on with the run."""
        step = _Step(connection, spec, cancelling=advanced.cancel_requested)
        await step.settled_inside(path, state, advanced.ready)
        await step.advance(self.dispatcher)

    async def instance_inputs(self, run_id: str, path: str) -> dict[str, Any]:
        """The body inputs of the instance a node inside a body is part of."""
        async with self._transaction() as connection:
            found = await connection.fetchval(INSTANCE_INPUTS, run_id, instance_prefix(path))
        return {} if found is None else msgspec.json.decode(found)
