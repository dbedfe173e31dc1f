"""Commits node results and events with group commit: whatever finished meanwhile goes in one
transaction, and each node's result is durable before the executor announces it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import msgspec
import structlog
from sqlalchemy import ColumnElement, Connection, Table, bindparam, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from engine.documents.document import Workflow, to_builtins
from engine.errors import NotFound
from engine.execution.events import AnyEvent, encode_event, event_type
from engine.execution.results import NodeState
from engine.storage import group_commit
from engine.storage.database import Database
from engine.storage.priors import summary
from engine.storage.result_rows import Row, blob_row, result_row
from engine.storage.sqlite_commit import Shape, SQLiteStatements
from engine.storage.tables import BlobRow, EventRow, NodeResultRow, ReusedResultsRow, RunRow

__all__ = [
    "BLOBS",
    "EVENTS",
    "INSERT_REUSED",
    "INSERT_RUNS",
    "NODE_RESULTS",
    "PRIORS_FROM",
    "REUSED",
    "RUNS",
    "SHAPES",
    "UPDATE_RUN",
    "Batch",
    "Priors",
    "ResultWriter",
    "document_blob",
    "insert_blob",
    "insert_for",
    "reused_rows",
    "sqlite_statements",
]

log = structlog.get_logger("nodeloom.storage")

# The runs with fewer results store no priors: their rows are read about as fast, and for runs
# of a few nodes the write more took 15-30% of the API's throughput on PostgreSQL.
PRIORS_FROM = 100
# How long after a run's end its priors are made and stored (see `ResultWriter.keep_priors`).
PRIORS_AFTER_S = 0.05


class Priors(NamedTuple):
    """What a rerun of a run that ended may take over (its states, as `priors.summary`
    stores them), and how it ended (its status and last event): stored while that stands."""

    states: Mapping[str, NodeState]
    status: str
    last_seq: int


@dataclass(slots=True)
class Batch:
    """What one caller waits to see committed for one run: its new row, result rows, events, or
    the columns it finished with. In one transaction they go in that order."""

    run_id: str
    rows: list[Row] = field(default_factory=list)
    run: dict[str, Any] | None = None
    # With a new run: its document's blob row (when it may not be stored yet), and the rows
    # listing the results it took over by reference.
    run_blob: dict[str, Any] | None = None
    run_reused: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: dict[str, Any] | None = None
    priors: Priors | None = None  # of a run whose end was committed before
    done: asyncio.Future[None] | None = None
    # A new run's row that nobody waits for: it goes with the next commit (see `run_started`).
    deferred: bool = False


_encoder = msgspec.json.Encoder()

NODE_RESULTS: Table = NodeResultRow.__table__  # type: ignore[assignment]
BLOBS: Table = BlobRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
RUNS: Table = RunRow.__table__  # type: ignore[assignment]
REUSED: Table = ReusedResultsRow.__table__  # type: ignore[assignment]
# Statements built once: SQLAlchemy then finds them compiled at once (building one costs more than
# executing it).
INSERT_RUNS = RUNS.insert()
INSERT_REUSED = REUSED.insert()
UPDATE_RUN = RUNS.update().where(RUNS.c.id == bindparam("finished_run_id"))
# A run's priors, while the end they are of stands (it was not taken up again since).
UPDATE_PRIORS = RUNS.update().where(
    RUNS.c.id == bindparam("priors_run_id"),
    RUNS.c.status == bindparam("ended_status"),
    RUNS.c.last_seq == bindparam("ended_last_seq"),
)
# A run's results taken over from a run it already took some from: the nodes are added.
_MORE_NODES_SQL = (
    "(SELECT json_group_array(value) FROM (SELECT value FROM json_each(reused_results.nodes)"
    " UNION ALL SELECT value FROM json_each(excluded.nodes)))"
)
_MORE_NODES: ColumnElement[Any] = literal_column(_MORE_NODES_SQL)
_UPDATED = [c.name for c in NODE_RESULTS.columns if c.name not in ("run_id", "node_id")]
# The SQLite statements of `ResultWriter._sqlite`, as they are written by hand (see `Shape`).
SHAPES = {
    "blobs": Shape(BLOBS, conflict=("digest",)),
    "runs": Shape(RUNS),
    "reused": Shape(
        REUSED, conflict=("run_id", "origin_run_id"), update={"nodes": _MORE_NODES_SQL}
    ),
    "results": Shape(NODE_RESULTS, conflict=("run_id", "node_id"), update=dict.fromkeys(_UPDATED)),
    "events": Shape(EVENTS, conflict=("run_id", "seq")),
    "finished": Shape(RUNS, key=("id", "finished_run_id")),
}


def insert_for(database: Database, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (both spell it the same way)."""
    if database.dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_blob(database: Database) -> postgresql.Insert | sqlite.Insert:
    """INSERT of blob rows; a blob already stored stays as it is (same digest, same data)."""
    return insert_for(database, BLOBS).on_conflict_do_nothing(index_elements=["digest"])


def sqlite_statements() -> dict[str, Executable]:
    """The statements of a commit on SQLite, by the tables of `_table_rows` (see `SHAPES`)."""
    upsert = sqlite.insert(NODE_RESULTS)
    return {
        "blobs": sqlite.insert(BLOBS).on_conflict_do_nothing(index_elements=["digest"]),
        "runs": INSERT_RUNS,
        "reused": sqlite.insert(REUSED).on_conflict_do_update(
            index_elements=["run_id", "origin_run_id"], set_={"nodes": _MORE_NODES}
        ),
        "results": upsert.on_conflict_do_update(
            index_elements=["run_id", "node_id"],
            set_={name: upsert.excluded[name] for name in _UPDATED},
        ),
        "events": sqlite.insert(EVENTS).on_conflict_do_nothing(index_elements=["run_id", "seq"]),
        "finished": UPDATE_RUN,
        "priors": UPDATE_PRIORS,
    }


class ResultWriter:
    """The executor's `ResultStore` for one database, shared by every run of a process."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._results: list[Batch] = []
        self._events: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Runs whose deferred row was not stored, and why: what comes after for them fails so.
        self._lost: dict[str, Exception] = {}
        self._sqlite = SQLiteStatements(sqlite_statements(), SHAPES)
        # Priors waiting their turn (see `keep_priors`), by run.
        self._priors: dict[str, tuple[asyncio.TimerHandle, Priors]] = {}

    async def run_started(
        self,
        row: RunRow,
        *,
        snapshot: dict[str, Any] | None = None,
        reused: Mapping[str, list[str]] | None = None,
        defer: float | None = None,
    ) -> None:
        """Insert a new run's row (with whatever else is being committed), the blob row of its
        ``snapshot`` document when given, and the results it took over by reference (nodes, by
        the run that computed their result). `NotFound` when the run it is a child of is no
        longer stored (its workflow was deleted): nothing is.

        With ``defer`` (seconds), return at once: the row goes with the run's first commit, or
        on its own after ``defer``, whichever comes first. A run that ends quickly is then
        stored in one transaction, not two. Its commits fail as its row did, if it did."""
        values = {
            column.key: getattr(row, column.key)
            for column in RunRow.__mapper__.columns
            if column.key in row.__dict__  # the rest take their defaults
        }
        batch = Batch(
            row.id, run=values, run_blob=snapshot, run_reused=reused_rows(row.id, reused or {})
        )
        if defer is None:
            await self._commit(batch)
            return
        batch.deferred = True
        self._results.append(batch)
        asyncio.get_running_loop().call_later(defer, self._kick)

    async def run_finished(
        self,
        run_id: str,
        *,
        last: tuple[str, NodeState] | None,
        events: Sequence[AnyEvent],
        reused: Mapping[str, list[str]] | None = None,
        reusable: Mapping[str, NodeState] | None = None,
        **values: Any,
    ) -> None:
        """Store how a run ended, with its ``last`` result and ``events``, after its other
        results and every pending event, and the results it took over on the way (``reused``,
        nodes by the run that made their result) beside those it took over at its start.
        ``reusable``, the states of a run that ended, are stored after it as what a rerun of it
        may take over (`keep_priors`), when there are `PRIORS_FROM` or more; None: nothing may
        be yet (the run waits)."""
        rows = [result_row(run_id, *last)] if last is not None else []
        try:
            await self._commit(
                Batch(
                    run_id,
                    rows=rows,
                    events=[_event_row(e) for e in events],
                    finished=values,
                    run_reused=reused_rows(run_id, reused or {}),
                )
            )
        finally:
            self._lost.pop(run_id, None)  # its last commit
        if reusable is not None and len(reusable) >= PRIORS_FROM:
            self.keep_priors(run_id, Priors(reusable, values["status"], values["last_seq"]))

    def keep_priors(self, run_id: str, priors: Priors) -> None:
        """Store the ``priors`` of a run that ended, made `PRIORS_AFTER_S` later (nobody waits
        for them: whoever waited for the run goes on first) or at the next `flush`, if the end
        they are of still stands then. Until they are stored, a rerun of the run reads its rows
        instead."""
        pending = self._priors.pop(run_id, None)
        if pending is not None:
            pending[0].cancel()
        timer = asyncio.get_running_loop().call_later(PRIORS_AFTER_S, self._store_priors, run_id)
        self._priors[run_id] = (timer, priors)

    def _store_priors(self, run_id: str) -> None:
        pending = self._priors.pop(run_id, None)
        if pending is not None:
            pending[0].cancel()
            self._results.append(Batch(run_id, priors=pending[1]))
            self._kick()

    async def node_finished(
        self, run_id: str, node_id: str, state: NodeState, events: Sequence[AnyEvent] = ()
    ) -> None:
        rows = [result_row(run_id, node_id, state)]
        await self._commit(Batch(run_id, rows=rows, events=[_event_row(e) for e in events]))

    async def _commit(self, batch: Batch) -> None:
        if batch.run_id in self._lost:
            raise self._lost[batch.run_id]
        batch.done = asyncio.get_running_loop().create_future()
        self._results.append(batch)
        self._kick()
        await batch.done

    def event(self, event: AnyEvent) -> None:
        """Write ``event`` with the next commit (or `flush`)."""
        if event.run_id not in self._lost:
            self._events.append(_event_row(event))

    async def close(self) -> None:
        """`flush` (the connection commits go on is the database's)."""
        await self.flush()

    async def flush(self) -> None:
        """Write everything pending, events and priors included."""
        for run_id in list(self._priors):
            self._store_priors(run_id)
        while self._results or self._events or (self._flusher and not self._flusher.done()):
            self._kick()
            assert self._flusher is not None
            await asyncio.wait({self._flusher})

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while self._results or self._events:
            # Whatever else is ready to run first may have something to commit too: it joins
            # this transaction rather than waiting for the next.
            await asyncio.sleep(0)
            results, self._results = self._results, []
            events, self._events = self._events, []
            results = [batch for batch in results if not self._failed(batch, None)]
            events = [event for event in events if event["run_id"] not in self._lost]
            try:
                refused = await self._write(_merge_ends(results), events)
            except Exception as exc:
                log.exception("writing results failed", results=len(results), events=len(events))
                for batch in results:
                    self._failed(batch, exc)
                continue
            # A refused run's row is in this commit: `run_started` is its first.
            parents = {b.run_id: b.run["parent_run_id"] for b in results if b.run is not None}
            for batch in results:
                if batch.run_id in refused:
                    self._failed(batch, NotFound(f"run {parents[batch.run_id]} not found"))
                elif batch.done is not None:
                    batch.done.set_result(None)

    def _failed(self, batch: Batch, exc: Exception | None) -> bool:
        """Fail ``batch`` with ``exc``, or (None) with why its run's row was not stored when it
        was not; a deferred row's failure is kept for its run's later commits."""
        if exc is None:
            if batch.run_id not in self._lost:
                return False
            exc = self._lost[batch.run_id]
        elif batch.deferred:
            self._lost[batch.run_id] = exc
        if batch.done is not None and not batch.done.done():
            batch.done.set_exception(exc)
        return True

    async def _write(self, results: list[Batch], events: list[dict[str, Any]]) -> set[str]:
        """One transaction for everything given; returns the runs refused. A child run whose
        parent is gone is refused, with everything of it (its caller started it from a parent
        it remembered): its foreign key would fail the whole transaction, others' work with
        it."""

        def write(connection: Connection) -> set[str]:
            refused = _orphans(connection, results)
            if refused:
                results[:] = [batch for batch in results if batch.run_id not in refused]
                events[:] = [event for event in events if event["run_id"] not in refused]
            rows = _table_rows(results, events)
            rows["finished"] = [_finished_values(end) for end in rows["finished"]]
            rows["priors"] = [_priors_values(given) for given in rows["priors"]]
            for table, found in rows.items():  # in the order foreign keys need
                if found:
                    self._sqlite.execute(connection, table, found)
            return refused

        if self._database.dialect == "postgresql":
            return await self._write_postgres(results, events)
        return await self._database.transaction(write)

    async def _write_postgres(self, results: list[Batch], events: list[dict[str, Any]]) -> set[str]:
        """`_write`'s transaction as one statement (see engine/storage/group_commit.py)."""
        return await self._database.committer().commit(**_table_rows(results, events))


def _table_rows(results: list[Batch], events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """What a commit of ``results`` and ``events`` writes, by table; ``finished`` is the ends
    of runs: their id and `group_commit.FINISHED_COLUMNS`; ``priors``, what reruns of runs
    that ended may take over (see `Priors`)."""
    blobs = {blob["digest"]: blob for batch in results for _, blob in batch.rows if blob}
    # A run stored or ending again here has no priors of an earlier end (one statement on
    # PostgreSQL could not update its row twice).
    ending = {b.run_id for b in results if b.run is not None or b.finished is not None}
    blobs |= {b.run_blob["digest"]: b.run_blob for b in results if b.run and b.run_blob}
    return {
        "blobs": list(blobs.values()),
        "runs": [batch.run for batch in results if batch.run is not None],
        "reused": _merged_reused(row for batch in results for row in batch.run_reused),
        "results": [row for batch in results for row, _ in batch.rows],
        "events": [*events, *(event for batch in results for event in batch.events)],
        "finished": [
            {"id": batch.run_id, **batch.finished}
            for batch in results
            if batch.finished is not None
        ],
        "priors": [
            row
            for batch in results
            if batch.priors is not None and batch.run_id not in ending
            if (row := _priors_row(batch.run_id, batch.priors)) is not None
        ],
    }


def _priors_row(run_id: str, priors: Priors) -> dict[str, Any] | None:
    """The row storing a run's priors; None (logged) when they cannot be made: the run's rows
    are read instead, and the commit they would go with is not lost."""
    try:
        made = summary(run_id, priors.states)
    except Exception:
        log.exception("priors not stored", run_id=run_id)
        return None
    return {"id": run_id, "status": priors.status, "last_seq": priors.last_seq, "priors": made}


def _merged_reused(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One reused_results row per run and origin: a run's start and its end may take over
    results of the same run, and go in one commit."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["run_id"], row["origin_run_id"])
        found = merged.get(key)
        if found is None:
            merged[key] = row
        else:
            merged[key] = {**found, "nodes": [*found["nodes"], *row["nodes"]]}
    return list(merged.values())


def _finished_values(end: dict[str, Any]) -> dict[str, Any]:
    """`UPDATE_RUN`'s parameters for an end of a run (as in `_table_rows`)."""
    return {"finished_run_id": end["id"], **{c: end[c] for c in group_commit.FINISHED_COLUMNS}}


def _priors_values(given: dict[str, Any]) -> dict[str, Any]:
    """`UPDATE_PRIORS`'s parameters for the priors of a run (as in `_table_rows`)."""
    return {
        "priors": given["priors"],
        "priors_run_id": given["id"],
        "ended_status": given["status"],
        "ended_last_seq": given["last_seq"],
    }


def _event_row(event: AnyEvent) -> dict[str, Any]:
    data = encode_event(event).decode()
    return {"run_id": event.run_id, "seq": event.seq, "type": event_type(event), "data": data}


def _merge_ends(results: list[Batch]) -> list[Batch]:
    """``results``, where a run inserted and finished in the same commit is inserted as it
    finished (no update of a row just inserted: on PostgreSQL, one statement could not)."""
    inserted = {batch.run_id: batch.run for batch in results if batch.run is not None}
    merged = []
    for batch in results:
        run = inserted.get(batch.run_id)
        if run is not None and batch.finished is not None:
            run.update(batch.finished)
            merged.append(replace(batch, finished=None))
        else:
            merged.append(batch)
    return merged


def _orphans(connection: Connection, results: list[Batch]) -> set[str]:
    """The child runs inserted by ``results`` whose parent run is not stored."""
    children = {
        batch.run_id: batch.run["parent_run_id"]
        for batch in results
        if batch.run is not None and batch.run.get("parent_run_id")
    }
    if not children:
        return set()
    found = SQLiteStatements.stored(connection, "runs", list(set(children.values())))
    return {run_id for run_id, parent in children.items() if parent not in found}


def document_blob(workflow: Workflow) -> dict[str, Any]:
    """The blobs row storing a document, as runs refer to their snapshot."""
    return blob_row(_encoder.encode(to_builtins(workflow)))


def reused_rows(run_id: str, reused: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """The reused_results rows of a run that took over results: the nodes, by the run that
    computed their result."""
    return [
        {"run_id": run_id, "origin_run_id": origin, "nodes": nodes}
        for origin, nodes in reused.items()
    ]
