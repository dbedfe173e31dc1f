"""A run's state moved on inside one transaction on asyncpg: the events it collected, numbered
after the run's last one under the lock on its row (statements.ADVANCE), its counters, and its
end once its last node settled."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import asyncpg  # type: ignore[import-untyped]
import msgspec

from engine.distributed import statements as sql
from engine.distributed.results import load_states, store_result
from engine.documents.plan import Plan
from engine.execution.announcer import Announcer
from engine.execution.events import AnyEvent, RunFinished, encode_event, event_type
from engine.execution.outcome import run_outputs, run_status
from engine.execution.results import NodeState
from engine.storage.keys import now

__all__ = [
    "Advanced",
    "Collected",
    "advance",
    "advanced_from",
    "finish_run",
    "insert_events",
    "move_on",
    "numbered_later",
    "pause_run",
    "prepare_statements",
]

_SEQ = '"seq":0'
_encode = msgspec.json.Encoder().encode


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
    ready: list[str] = []  # successors the transaction queued


async def prepare_statements(connection: asyncpg.Connection) -> None:
    for statement in (sql.LOOK, sql.TAKE, sql.SETTLE, sql.ADVANCE):
        await connection.prepare(statement)


async def advance(
    connection: asyncpg.Connection,
    collected: Collected,
    *,
    settled: int = 0,
    in_flight: int = 0,
    started: bool = False,
    successors: Collection[str] = (),
    cancelling: bool = False,
) -> Advanced:
    """Lock the run's row (statements.ADVANCE): count down the successors' waits, move the
    run's counters, number and store the collected events."""
    types, heads, tails = numbered_later(collected.events)
    found = await connection.fetchrow(
        sql.ADVANCE,
        collected.run_id,
        settled,
        in_flight,
        started,
        types,
        heads,
        tails,
        list(successors),
        cancelling,
    )
    return advanced_from(found)


def advanced_from(found: asyncpg.Record) -> Advanced:
    remaining, flying, cancel_requested, last_seq, was_started, ready = list(found)[:6]
    return Advanced(remaining, flying, cancel_requested, last_seq, was_started, list(ready))


def numbered_later(events: Sequence[AnyEvent]) -> tuple[list[str], list[str], list[str]]:
    """The events' types, and their JSON before and after their sequence number, which the
    database fills in once it has numbered them."""
    types, heads, tails = [], [], []
    for event in events:
        data = encode_event(msgspec.structs.replace(event, seq=0)).decode()
        cut = data.index(_SEQ) + len(_SEQ) - 1  # `seq` comes right after the tag and run id
        types.append(event_type(event))
        heads.append(data[:cut])
        tails.append(data[cut + 1 :])
    return types, heads, tails


async def insert_events(
    connection: asyncpg.Connection, run_id: str, events: Sequence[AnyEvent]
) -> None:
    if events:
        await connection.execute(
            sql.INSERT_EVENTS,
            run_id,
            [event.seq for event in events],
            [event_type(event) for event in events],
            [encode_event(event).decode() for event in events],
        )


async def finish_run(
    connection: asyncpg.Connection, run_id: str, advanced: Advanced, plan: Plan
) -> None:
    """The run's end (its row locked already): nodes never started are cancelled, then
    status, outputs and the `run.finished` event."""
    stamp = now()
    for (node_id,) in await connection.fetch(sql.CLOSE_NODES, run_id):
        cancelled = NodeState(status="cancelled", finished_at=stamp)
        await store_result(connection, run_id, node_id, cancelled)
    states = await load_states(connection, run_id, plan.nodes)
    outputs = run_outputs(plan, states)
    status, error = run_status(plan.nodes, states, cancelled=advanced.cancel_requested)
    seq = advanced.last_seq + 1
    await connection.execute(sql.CLOSE_RUN, run_id, seq)
    finished = RunFinished(run_id=run_id, seq=seq, status=status, outputs=outputs, error=error)
    await insert_events(connection, run_id, [finished])
    await connection.execute(sql.NOTIFY, run_id)
    await connection.execute(sql.FINISH_RUN, run_id, status, _encode(outputs).decode(), error, seq)
    for statement in sql.FORGET_BODIES:  # the runs of its bodies are over
        await connection.execute(statement, run_id)


async def pause_run(
    connection: asyncpg.Connection, run_id: str, advanced: Advanced, plan: Plan
) -> None:
    """The run waits for an answer (its row locked already, nothing in flight): its outputs so
    far, and a `run.finished` event saying `waiting`; `Scheduler.answer` goes on with it."""
    states = await load_states(connection, run_id, plan.nodes)
    outputs = run_outputs(plan, states)
    seq = advanced.last_seq + 1
    await connection.execute(sql.PAUSE_RUN, run_id, seq)
    waiting = RunFinished(run_id=run_id, seq=seq, status="waiting", outputs=outputs, error=None)
    await insert_events(connection, run_id, [waiting])
    await connection.execute(sql.NOTIFY, run_id)
    await connection.execute(sql.WAIT_RUN, run_id, _encode(outputs).decode(), seq)


async def move_on(
    connection: asyncpg.Connection, run_id: str, advanced: Advanced, plan: Plan
) -> None:
    """After a transaction moved the run on (its row locked): the run's end after its last
    node (or a cancel with nothing in flight), or its wait when nothing but parked nodes and
    what follows them is left."""
    if advanced.remaining == 0 or (advanced.cancel_requested and advanced.in_flight == 0):
        await finish_run(connection, run_id, advanced, plan)
    elif advanced.in_flight == 0:
        await pause_run(connection, run_id, advanced, plan)
