"""The state of runs executing on workers, changed one transaction at a time.

Every change to a run locks its `dispatched_runs` row, so the changes of one run are
serialised across workers: which successors became ready, the numbers of its events (taken from
``last_seq`` under the lock, so they commit in order) and whether the run is over. A node result
is committed only while the node's ``attempt`` is the one the worker took (the fencing token); in
the same transaction its successors' jobs are queued. The node's own job is removed afterwards
by the worker's consumer: a job delivered again after its node settled is dropped.

The statements of a node's way through (look, take, settle) run on asyncpg connections of the
scheduler's own pool (engine/distributed/statements.py); the rarer ones of the server side go
through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import msgspec
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker

from engine.distributed import statements as sql
from engine.distributed.bodies import BodyInstances
from engine.distributed.dispatcher import Dispatcher, NodeJob
from engine.distributed.parking import ParkedNodes
from engine.distributed.plans import RunSpec
from engine.distributed.progress import (
    Collected,
    advance,
    advanced_from,
    finish_run,
    move_on,
    numbered_later,
    prepare_statements,
)
from engine.distributed.results import load_states, result_values
from engine.distributed.tables import DispatchedRunRow, NodeExecutionRow
from engine.documents.plan import Plan, PlanNode
from engine.execution.results import NodeState
from engine.execution.start import RunStart
from engine.runs.processes import QUEUE_OWNER
from engine.storage.database import Database, asyncpg_dsn
from engine.storage.keys import now
from engine.storage.tables import RunRow
from engine.storage.writer import INSERT_REUSED, insert_blob, reused_rows

__all__ = [
    "CANCEL_CHANNEL",
    "EVENTS_CHANNEL",
    "NEEDS_TRANSACTION",
    "NODES",
    "POOL_SIZE",
    "RUNS",
    "NodeInfo",
    "Scheduler",
    "driver_connection",
]

CANCEL_CHANNEL = "nodeloom_cancel"  # NOTIFY payload: the id of a run asked to stop
EVENTS_CHANNEL = sql.EVENTS_CHANNEL
POOL_SIZE = 10  # connections of a scheduler's own pool, at most

RUNS: Table = DispatchedRunRow.__table__  # type: ignore[assignment]
NODES: Table = NodeExecutionRow.__table__  # type: ignore[assignment]
_IN_FLIGHT = ("queued", "running")
_encode = msgspec.json.Encoder().encode
NEEDS_TRANSACTION = "NL001"  # raised by statements.SETTLE (migration 0005)


class NodeInfo(msgspec.Struct, frozen=True):
    status: str
    attempt: int
    cancel_requested: bool


async def driver_connection(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy one whose transaction has run a statement."""
    raw = await connection.get_raw_connection()
    found: asyncpg.Connection = raw.driver_connection
    if not found.is_in_transaction():
        # SQLAlchemy begins the asyncpg transaction with its first statement.
        raise RuntimeError("queue writes need a transaction that has run a statement")
    return found


class Scheduler(ParkedNodes, BodyInstances):
    """Queues runs and moves their nodes through waiting → queued → running → done.
    ``server_settings`` are set on the connections of its own pool (a worker's names them)."""

    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        *,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.database = database
        self.dispatcher = dispatcher
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)
        self.server_settings = dict(server_settings or {})
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._connections()
        async with pool.acquire() as connection, connection.transaction():
            yield connection

    async def _connections(self) -> asyncpg.Pool:
        return await self.open()

    async def open(self, connections: int = 1) -> asyncpg.Pool:
        """The scheduler's pool, opened with ``connections`` ready at once, each with the
        statements of a node's way through prepared (and the types they use looked up), so
        that the first nodes do not pay for that."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    from engine.distributed.pgq import PooledConnection  # noqa: PLC0415

                    self._pool = await asyncpg.create_pool(
                        asyncpg_dsn(self.database.engine.url),
                        min_size=min(connections, POOL_SIZE),
                        max_size=POOL_SIZE,
                        server_settings=self.server_settings,
                        connection_class=PooledConnection,
                        init=prepare_statements,
                    )
        return self._pool

    # -- runs (the server's side) ---------------------------------------------------------

    async def queue_run(
        self, start: RunStart, row: RunRow, reused: Mapping[str, list[str]]
    ) -> None:
        """Store the run as ``queued`` with its nodes, and queue those that are ready. A resumed
        run's committed results (``start.done``) stand; so do those a new run takes over from
        earlier runs (``reused``: nodes by the run that computed their result, stored by
        reference)."""
        plan = start.plan
        insert_row = not start.resuming
        row.status, row.owner_process, row.heartbeat_at = "queued", QUEUE_OWNER, None
        reused = dict(reused) if insert_row else {}
        done = {*start.done, *(node for nodes in reused.values() for node in nodes)}
        document = start.snapshot.document if start.snapshot is not None else None
        async with self.sessions.begin() as session:
            connection = await session.connection()
            if insert_row:
                row.started_at = None
                if document is not None:
                    await connection.execute(insert_blob(self.database), [document])
                session.add(row)
                await session.flush()
                if reused:
                    await connection.execute(INSERT_REUSED, reused_rows(row.id, reused))
            else:
                await connection.execute(
                    update(RunRow)
                    .where(RunRow.id == row.id)
                    .values(status="queued", owner_process=QUEUE_OWNER, error=None, priors=None)
                )
                await connection.execute(delete(NODES).where(NODES.c.run_id == row.id))
                await connection.execute(delete(RUNS).where(RUNS.c.run_id == row.id))
            driver = await driver_connection(connection)
            if not insert_row:  # what its bodies ran before runs again
                for statement in sql.FORGET_BODIES:
                    await driver.execute(statement, row.id)
            ids, statuses, waits, ready = [], [], [], []
            for node in plan.nodes.values():
                waiting = sum(1 for p in node.predecessors if p not in done)
                status = "done" if node.id in done else "queued" if waiting == 0 else "waiting"
                if status == "queued":
                    ready.append(node.id)
                ids.append(node.id)
                statuses.append(status)
                waits.append(waiting)
            await driver.execute(sql.INSERT_NODES, row.id, ids, statuses, waits)
            await driver.execute(
                sql.INSERT_RUN,
                row.id,
                sum(1 for node_id in plan.nodes if node_id not in done),
                len(ready),
                start.first_seq,
                start.parent_run_id if start.reuse else None,
                _encode(sorted(start.force)).decode(),
                _encode(dict(start.reasons)).decode(),
            )
            await self.dispatcher.enqueue(driver, [NodeJob(row.id, n) for n in ready])
            collected = Collected(row.id)
            collected.announcer.run_started(plan.workflow.name, len(plan.nodes), reused)
            advanced = await advance(driver, collected)
            if advanced.remaining == 0:
                await finish_run(driver, row.id, advanced, plan)

    async def request_cancel(self, run_id: str) -> bool:
        """Ask the workers to stop the run (and tell them at once, on `CANCEL_CHANNEL`); False
        if it is not executing on workers."""
        async with self.database.engine.begin() as connection:
            found = await connection.scalar(
                update(RUNS)
                .where(RUNS.c.run_id == run_id)
                .values(cancel_requested=True)
                .returning(RUNS.c.run_id)
            )
            if found is not None:
                await connection.execute(
                    select(func.pg_notify(CANCEL_CHANNEL, run_id))  # delivered on commit
                )
        return found is not None

    async def cancelled_among(self, run_ids: Collection[str]) -> set[str]:
        """Which of these runs have been asked to stop."""
        if not run_ids:
            return set()
        async with self.database.engine.connect() as connection:
            found = await connection.scalars(
                select(RUNS.c.run_id).where(
                    RUNS.c.run_id.in_(list(run_ids)), RUNS.c.cancel_requested.is_(True)
                )
            )
            return set(found)

    async def requeue_lost(self, older_than_s: float) -> int:
        """Queue again the nodes queued or running for a while whose job is gone (its worker's
        late report removed it, say); a node whose job is alive keeps it. Returns how many."""
        cutoff = now() - timedelta(seconds=older_than_s)
        async with self.database.engine.begin() as connection:
            rows = (
                await connection.execute(
                    update(NODES)
                    .where(NODES.c.status.in_(_IN_FLIGHT), NODES.c.updated_at < cutoff)
                    .values(updated_at=now())
                    .returning(NODES.c.run_id, NODES.c.node_id)
                )
            ).all()
            if rows:
                await self.dispatcher.enqueue(
                    await driver_connection(connection), [NodeJob(r, n) for r, n in rows]
                )
        return len(rows)

    # -- one node (the workers' side) -----------------------------------------------------

    async def look(
        self, job: NodeJob, predecessors: Collection[str]
    ) -> tuple[NodeInfo | None, dict[str, NodeState]]:
        """The node's execution row (None when it is gone) and, while it is in flight, its
        predecessors' results."""
        pool = await self._connections()
        async with pool.acquire() as connection:
            rows = await connection.fetch(sql.LOOK, job.run_id, job.node_id, list(predecessors))
            info = next(
                (
                    NodeInfo(row["status"], row["attempt"], row["cancel_requested"])
                    for row in rows
                    if row["kind"] == "node"
                ),
                None,
            )
            if info is None or info.status not in _IN_FLIGHT:
                return info, {}
            results = [row for row in rows if row["kind"] == "result"]
            return info, await load_states(connection, job.run_id, predecessors, results)

    async def take(
        self,
        job: NodeJob,
        worker: str,
        expected: int,
        *,
        failure: str | None = None,
        tokens: Sequence[str] = (),
    ) -> tuple[int, bool] | None:
        """Take the node to execute it (again, after ``failure``): its attempt goes from
        ``expected`` to the returned one. None when another worker has taken it meanwhile;
        the flag says the run is being cancelled (and no attempt was announced)."""
        collected = Collected(job.run_id)
        collected.tokens(job.node_id, tokens)
        if failure is not None:
            collected.announcer.retrying(job.node_id, expected, failure)
        unless_cancelling = [False] * len(collected.events)
        collected.announcer.node_started(job.node_id, expected + 1)
        unless_cancelling.append(True)  # a run being cancelled starts nothing more
        types, heads, tails = numbered_later(collected.events)
        pool = await self._connections()
        taken = await pool.fetchrow(
            sql.TAKE,
            job.run_id,
            job.node_id,
            expected,
            worker,
            types,
            heads,
            tails,
            unless_cancelling,
        )
        if taken is None:
            return None
        attempt, cancelling, _ = taken
        return int(attempt), bool(cancelling)

    async def publish_tokens(self, job: NodeJob, tokens: Sequence[str]) -> None:
        async with self._transaction() as connection:
            collected = Collected(job.run_id)
            collected.tokens(job.node_id, tokens)
            await advance(connection, collected)

    async def settle(
        self,
        job: NodeJob,
        state: NodeState,
        attempt: int,
        *,
        plan: Plan,
        spec: RunSpec | None = None,
        tokens: Sequence[str] = (),
    ) -> bool:
        """Commit the node's final state if ``attempt`` is still its current one, queue the
        successors that became ready, and finish the run after its last node (``spec``: the
        run as workers know it, for a node inside a body). False (nothing written) when the
        node was taken over or settled by someone else.

        Most settles are one statement, which holds the run's row only while it executes;
        one that has to queue successors, finish the run or count down the instance of a body
        it is part of is a transaction."""
        nodes: Mapping[str, PlanNode] = plan.nodes if spec is None else spec.nodes
        node = nodes[job.node_id]
        inside = "/" in job.node_id
        collected = Collected(job.run_id)
        collected.tokens(job.node_id, tokens)
        if state.status != "cancelled":  # as in-process: a cancelled node has no event
            collected.announcer.result(job.node_id, state)
        pool = await self._connections()
        async with pool.acquire() as connection:
            values = await result_values(connection, job.run_id, job.node_id, state)
            arguments = (
                job.run_id,
                job.node_id,
                attempt,
                *values[2:],
                *numbered_later(collected.events),
                list(node.successors),
            )
            # A successor waiting for this node alone is queued now: no need to try.
            if not inside and not any(len(nodes[s].predecessors) == 1 for s in node.successors):
                try:
                    found = await connection.fetchrow(sql.SETTLE, *arguments, True)
                except asyncpg.PostgresError as exc:
                    if exc.sqlstate != NEEDS_TRANSACTION:
                        raise
                else:
                    return found is not None
            async with connection.transaction():
                found = await connection.fetchrow(sql.SETTLE, *arguments, False)
                if found is None:
                    return False  # a blob stored meanwhile is harmless: shared by digest
                advanced = advanced_from(found)
                if inside:
                    assert spec is not None
                    await self.inside_settled(connection, job.node_id, state, advanced, spec=spec)
                else:
                    await self.dispatcher.enqueue(
                        connection, [NodeJob(job.run_id, n) for n in advanced.ready]
                    )
                    await move_on(connection, job.run_id, advanced, plan)
        return True

    async def states(self, run_id: str, node_ids: Collection[str]) -> dict[str, NodeState]:
        """The committed results of these nodes of the run."""
        async with (await self._connections()).acquire() as connection:
            return await load_states(connection, run_id, node_ids)
