"""The state of runs executing on workers, changed one transaction at a time.

Every change to a run locks its `dispatched_runs` row first, so the changes of one run are
serialised across workers: which successors became ready, the numbers of its events (taken from
``last_seq`` under the lock, so they commit in order) and whether the run is over. A node result
is committed only while the node's ``attempt`` is the one the worker took (the fencing token); in
the same transaction its successors' jobs are queued and its own job is removed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta

import msgspec
from sqlalchemy import Table, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker

from engine.announcer import Announcer
from engine.distributed.dispatcher import Delivery, Dispatcher, NodeJob
from engine.distributed.results import load_states, store_result
from engine.distributed.tables import DispatchedRunRow, NodeExecutionRow
from engine.events import AnyEvent, RunFinished, RunStatus, encode_event, event_type
from engine.graph import Plan
from engine.results import NodeState
from engine.storage.database import Database
from engine.storage.repository import now
from engine.storage.tables import EventRow, RunRow

QUEUE_OWNER = "queue"  # runs.owner_process of the runs workers execute
EVENTS_CHANNEL = "nodeloom_events"  # NOTIFY payload: the run id whose events were committed

RUNS: Table = DispatchedRunRow.__table__  # type: ignore[assignment]
NODES: Table = NodeExecutionRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
_IN_FLIGHT = ("queued", "running")


class Collected:
    """Events of one transaction, numbered once the run's row hands out their ``seq``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.events: list[AnyEvent] = []
        self.announcer = Announcer(run_id, [self.events.append])

    def tokens(self, node_id: str, texts: Iterable[str]) -> None:
        emit = self.announcer.token_emitter(node_id)
        for piece in texts:
            emit(piece)


class Advanced(msgspec.Struct, frozen=True):
    """The run's row after a transaction moved it on."""

    remaining: int
    in_flight: int
    cancel_requested: bool
    last_seq: int
    was_started: bool


# The one statement that locks a run's row, as late in a transaction as possible: it moves the
# counters and hands out the sequence numbers of the transaction's events.
_ADVANCE = text(
    """
    UPDATE dispatched_runs AS d
    SET remaining = d.remaining - :settled, in_flight = d.in_flight + :in_flight,
        last_seq = d.last_seq + :events, started = d.started OR :started
    FROM (SELECT started FROM dispatched_runs WHERE run_id = :run FOR UPDATE) AS old
    WHERE d.run_id = :run
    RETURNING d.remaining, d.in_flight, d.cancel_requested, d.last_seq, old.started
    """
)


class NodeInfo(msgspec.Struct, frozen=True):
    status: str
    attempt: int
    cancel_requested: bool


class Scheduler:
    """Queues runs and moves their nodes through waiting → queued → running → done."""

    def __init__(self, database: Database, dispatcher: Dispatcher) -> None:
        self.database = database
        self.dispatcher = dispatcher
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    # -- runs -----------------------------------------------------------------------------

    async def queue_run(
        self,
        row: RunRow,
        plan: Plan,
        *,
        insert_row: bool,
        done: Collection[str] = (),
        reuse_from: str | None = None,
        force: Collection[str] = (),
        reasons: Mapping[str, str] | None = None,
        first_seq: int = 0,
    ) -> None:
        """Store the run as ``queued`` with its nodes, and queue those that are ready. Nodes in
        ``done`` have committed results (a resumed run) and stand."""
        row.status, row.owner_process, row.heartbeat_at = "queued", QUEUE_OWNER, None
        async with self.sessions.begin() as session:
            if insert_row:
                row.started_at = None
                session.add(row)
                await session.flush()
            connection = await session.connection()
            if not insert_row:
                await connection.execute(
                    update(RunRow)
                    .where(RunRow.id == row.id)
                    .values(status="queued", owner_process=QUEUE_OWNER, error=None)
                )
                await connection.execute(delete(NODES).where(NODES.c.run_id == row.id))
                await connection.execute(delete(RUNS).where(RUNS.c.run_id == row.id))
            stamp = now()
            nodes, ready = [], []
            for node in plan.nodes.values():
                waiting = sum(1 for p in node.predecessors if p not in done)
                status = "done" if node.id in done else "queued" if waiting == 0 else "waiting"
                if status == "queued":
                    ready.append(node.id)
                nodes.append(
                    {
                        "run_id": row.id,
                        "node_id": node.id,
                        "status": status,
                        "waiting_on": waiting,
                        "attempt": 0,
                        "worker": None,
                        "updated_at": stamp,
                    }
                )
            await connection.execute(insert(NODES), nodes)
            await connection.execute(
                insert(RUNS).values(
                    run_id=row.id,
                    cancel_requested=False,
                    started=False,
                    remaining=len(plan.nodes) - len(done),
                    in_flight=len(ready),
                    last_seq=first_seq,
                    reuse_from=reuse_from,
                    force=sorted(force),
                    reasons=dict(reasons or {}),
                )
            )
            await self.dispatcher.enqueue(connection, [NodeJob(row.id, n) for n in ready])
            collected = Collected(row.id)
            collected.announcer.run_started(plan.workflow.name, list(plan.nodes), {})
            advanced = await self._advance(connection, collected)
            if advanced.remaining == 0:
                await self._finish(connection, row.id, advanced, plan)

    async def request_cancel(self, run_id: str) -> bool:
        """Ask the workers to stop the run; False if it is not executing on workers."""
        async with self.database.engine.begin() as connection:
            found = await connection.scalar(
                update(RUNS)
                .where(RUNS.c.run_id == run_id)
                .values(cancel_requested=True)
                .returning(RUNS.c.run_id)
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
            await self.dispatcher.enqueue(connection, [NodeJob(r, n) for r, n in rows])
        return len(rows)

    # -- one node -------------------------------------------------------------------------

    async def node_info(self, job: NodeJob) -> NodeInfo | None:
        async with self.database.engine.connect() as connection:
            found = (
                await connection.execute(
                    select(NODES.c.status, NODES.c.attempt, RUNS.c.cancel_requested)
                    .join(RUNS, RUNS.c.run_id == NODES.c.run_id)
                    .where(NODES.c.run_id == job.run_id, NODES.c.node_id == job.node_id)
                )
            ).first()
        return None if found is None else NodeInfo(*found)

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
        async with self.database.engine.begin() as connection:
            cancelling = await connection.scalar(
                select(RUNS.c.cancel_requested).where(RUNS.c.run_id == job.run_id)
            )
            if cancelling is None:
                return None
            attempt = await connection.scalar(
                update(NODES)
                .where(
                    NODES.c.run_id == job.run_id,
                    NODES.c.node_id == job.node_id,
                    NODES.c.status.in_(_IN_FLIGHT),
                    NODES.c.attempt == expected,
                )
                .values(
                    attempt=NODES.c.attempt + 1, status="running", worker=worker, updated_at=now()
                )
                .returning(NODES.c.attempt)
            )
            if attempt is None:
                return None
            collected = Collected(job.run_id)
            collected.tokens(job.node_id, tokens)
            if failure is not None:
                collected.announcer.retrying(job.node_id, expected, failure)
            if not cancelling:
                collected.announcer.node_started(job.node_id, attempt)
            advanced = await self._advance(connection, collected, started=True)
            if not advanced.was_started:
                await connection.execute(
                    update(RunRow)
                    .where(RunRow.id == job.run_id, RunRow.status == "queued")
                    .values(status="running", started_at=now())
                )
            return int(attempt), bool(cancelling)

    async def publish_tokens(self, job: NodeJob, tokens: Sequence[str]) -> None:
        async with self.database.engine.begin() as connection:
            collected = Collected(job.run_id)
            collected.tokens(job.node_id, tokens)
            await self._advance(connection, collected)

    async def settle(
        self,
        job: NodeJob,
        state: NodeState,
        attempt: int,
        *,
        plan: Plan,
        delivery: Delivery,
        tokens: Sequence[str] = (),
    ) -> bool:
        """Commit the node's final state if ``attempt`` is still its current one, queue the
        successors that became ready, remove the job, and finish the run after its last node.
        False (nothing written) when the node was taken over or settled by someone else."""
        async with self.database.engine.begin() as connection:
            fenced = await connection.scalar(
                update(NODES)
                .where(
                    NODES.c.run_id == job.run_id,
                    NODES.c.node_id == job.node_id,
                    NODES.c.status.in_(_IN_FLIGHT),
                    NODES.c.attempt == attempt,
                )
                .values(status="done", updated_at=now())
                .returning(NODES.c.node_id)
            )
            if fenced is None:
                return False
            await store_result(connection, job.run_id, job.node_id, state)
            collected = Collected(job.run_id)
            collected.tokens(job.node_id, tokens)
            if state.status != "cancelled":  # as in-process: a cancelled node has no event
                collected.announcer.result(job.node_id, state)
            queued = 0
            successors = plan.nodes[job.node_id].successors
            if successors:
                counted = await connection.execute(
                    update(NODES)
                    .where(NODES.c.run_id == job.run_id, NODES.c.node_id.in_(successors))
                    .values(waiting_on=NODES.c.waiting_on - 1)
                    .returning(NODES.c.node_id, NODES.c.waiting_on)
                )
                ready = [node_id for node_id, waiting in counted if waiting == 0]
                cancelling = ready and await connection.scalar(
                    select(RUNS.c.cancel_requested).where(RUNS.c.run_id == job.run_id)
                )
                if ready and not cancelling:
                    await connection.execute(
                        update(NODES)
                        .where(NODES.c.run_id == job.run_id, NODES.c.node_id.in_(ready))
                        .values(status="queued", updated_at=now())
                    )
                    await self.dispatcher.enqueue(
                        connection, [NodeJob(job.run_id, n) for n in ready]
                    )
                    queued = len(ready)
            await self.dispatcher.complete(connection, delivery)
            advanced = await self._advance(connection, collected, settled=1, in_flight=queued - 1)
            if advanced.remaining == 0 or (advanced.cancel_requested and advanced.in_flight == 0):
                await self._finish(connection, job.run_id, advanced, plan)
        return True

    async def drop(self, delivery: Delivery) -> None:
        """Remove a job whose node needs nothing more (settled already, or not queued)."""
        async with self.database.engine.begin() as connection:
            await connection.execute(text("SELECT 1"))
            await self.dispatcher.complete(connection, delivery)

    async def states(self, run_id: str, node_ids: Collection[str]) -> dict[str, NodeState]:
        async with self.database.engine.connect() as connection:
            return await load_states(connection, run_id, node_ids)

    # -- inside a transaction -------------------------------------------------------------

    async def _advance(
        self,
        connection: AsyncConnection,
        collected: Collected,
        *,
        settled: int = 0,
        in_flight: int = 0,
        started: bool = False,
    ) -> Advanced:
        """Lock the run's row, move its counters, number and store the collected events."""
        found = (
            await connection.execute(
                _ADVANCE,
                {
                    "run": collected.run_id,
                    "settled": settled,
                    "in_flight": in_flight,
                    "events": len(collected.events),
                    "started": started,
                },
            )
        ).one()
        advanced = Advanced(*found)
        first = advanced.last_seq - len(collected.events)
        events = [
            msgspec.structs.replace(event, seq=first + index)
            for index, event in enumerate(collected.events, start=1)
        ]
        await self._publish(connection, collected.run_id, events)
        return advanced

    async def _publish(
        self, connection: AsyncConnection, run_id: str, events: Sequence[AnyEvent]
    ) -> None:
        if not events:
            return
        await connection.execute(
            insert(EVENTS),
            [
                {
                    "run_id": event.run_id,
                    "seq": event.seq,
                    "type": event_type(event),
                    "data": encode_event(event).decode(),
                }
                for event in events
            ],
        )
        await connection.execute(
            text("SELECT pg_notify(:channel, :run_id)"),
            {"channel": EVENTS_CHANNEL, "run_id": run_id},
        )

    async def _finish(
        self, connection: AsyncConnection, run_id: str, advanced: Advanced, plan: Plan
    ) -> None:
        """The run's end (its row locked already): nodes never started are cancelled, then
        status, outputs and the `run.finished` event."""
        stamp = now()
        unsettled = (
            await connection.scalars(
                update(NODES)
                .where(NODES.c.run_id == run_id, NODES.c.status != "done")
                .values(status="done", updated_at=stamp)
                .returning(NODES.c.node_id)
            )
        ).all()
        for node_id in unsettled:
            cancelled = NodeState(status="cancelled", finished_at=stamp)
            await store_result(connection, run_id, node_id, cancelled)
        states = await load_states(connection, run_id, plan.nodes)
        outputs = {
            node.params["name"]: states[node.id].output["value"]  # type: ignore[index]
            for node in plan.by_role("output")
            if node.id in states and states[node.id].status in ("succeeded", "cached")
        }
        status: RunStatus = "succeeded"
        error = None
        failed = [n for n in plan.nodes if n in states and states[n].status == "failed"]
        if failed:
            status, error = "failed", f"node {failed[0]} failed: {states[failed[0]].error}"
        elif advanced.cancel_requested:
            status, error = "cancelled", "cancelled"
        seq = advanced.last_seq + 1
        await connection.execute(
            update(RUNS)
            .where(RUNS.c.run_id == run_id)
            .values(last_seq=seq, remaining=0, in_flight=0)
        )
        finished = RunFinished(run_id=run_id, seq=seq, status=status, outputs=outputs, error=error)
        await self._publish(connection, run_id, [finished])
        await connection.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .values(status=status, outputs=outputs, error=error, finished_at=stamp, last_seq=seq)
        )
