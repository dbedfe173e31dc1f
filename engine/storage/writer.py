"""Commits node results and events with group commit: whatever finished meanwhile goes in one
transaction, and each node's result is durable before the executor announces it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.document import Workflow, to_builtins
from engine.errors import NotFound
from engine.events import AnyEvent, encode_event, event_type
from engine.results import NodeState
from engine.storage import group_commit
from engine.storage.database import Database, asyncpg_dsn
from engine.storage.tables import BlobRow, EventRow, NodeResultRow, ReusedResultsRow, RunRow

log = structlog.get_logger("nodeloom.storage")

# A node_results row, and the blob row holding its output when that is large.
Row = tuple[dict[str, Any], dict[str, Any] | None]


@dataclass(slots=True)
class Batch:
    """What one caller waits to see committed: a new run's row, result rows, events, or the
    columns a run finished with. In one transaction they go in that order."""

    rows: list[Row] = field(default_factory=list)
    run: dict[str, Any] | None = None
    # With a new run: its document's blob row (when it may not be stored yet), and the rows
    # listing the results it took over by reference.
    run_blob: dict[str, Any] | None = None
    run_reused: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: tuple[str, dict[str, Any]] | None = None
    done: asyncio.Future[None] | None = None


BLOB_THRESHOLD = 4096  # bytes of JSON above which an output is stored once, by digest
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
STORED_RUNS = select(RUNS.c.id).where(RUNS.c.id.in_(bindparam("run_ids", expanding=True)))


def insert_for(database: Database, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (both spell it the same way)."""
    if database.dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_blob(database: Database) -> postgresql.Insert | sqlite.Insert:
    """INSERT of blob rows; a blob already stored stays as it is (same digest, same data)."""
    return insert_for(database, BLOBS).on_conflict_do_nothing(index_elements=["digest"])


class ResultWriter:
    """The executor's `ResultStore` for one database, shared by every run of a process."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._results: list[Batch] = []
        self._events: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._committer: group_commit.Committer | None = None  # on PostgreSQL
        upsert = insert_for(database, NODE_RESULTS)
        columns = {
            c.name: upsert.excluded[c.name]
            for c in NODE_RESULTS.columns
            if c.name not in ("run_id", "node_id")
        }
        self._upsert_result = upsert.on_conflict_do_update(
            index_elements=["run_id", "node_id"], set_=columns
        )
        self._insert_blob = insert_blob(database)
        self._insert_event = insert_for(database, EVENTS).on_conflict_do_nothing(
            index_elements=["run_id", "seq"]
        )

    async def run_started(
        self,
        row: RunRow,
        *,
        snapshot: dict[str, Any] | None = None,
        reused: Mapping[str, list[str]] | None = None,
    ) -> None:
        """Insert a new run's row (with whatever else is being committed), the blob row of its
        ``snapshot`` document when given, and the results it took over by reference (nodes, by
        the run that computed their result). `NotFound` when the run it is a child of is no
        longer stored (its workflow was deleted): nothing is."""
        values = {
            column.key: getattr(row, column.key)
            for column in RunRow.__mapper__.columns
            if column.key in row.__dict__  # the rest take their defaults
        }
        batch = Batch(run=values, run_blob=snapshot, run_reused=reused_rows(row.id, reused or {}))
        await self._commit(batch)

    async def run_finished(
        self,
        run_id: str,
        *,
        last: tuple[str, NodeState] | None,
        events: Sequence[AnyEvent],
        **values: Any,
    ) -> None:
        """Store how a run ended, with its ``last`` result and ``events``, after its other
        results and every pending event."""
        rows = [result_row(run_id, *last)] if last is not None else []
        await self._commit(
            Batch(rows=rows, events=[_event_row(e) for e in events], finished=(run_id, values))
        )

    async def node_finished(self, run_id: str, node_id: str, state: NodeState) -> None:
        await self._commit(Batch(rows=[result_row(run_id, node_id, state)]))

    async def _commit(self, batch: Batch) -> None:
        batch.done = asyncio.get_running_loop().create_future()
        self._results.append(batch)
        self._kick()
        await batch.done

    def event(self, event: AnyEvent) -> None:
        """Write ``event`` with the next commit (or `flush`)."""
        self._events.append(_event_row(event))

    async def close(self) -> None:
        """`flush`, then let go of the connection of its own (PostgreSQL)."""
        await self.flush()
        if self._committer is not None:
            await self._committer.close()

    async def flush(self) -> None:
        """Write everything pending, events included."""
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
            try:
                await self._write(results, events)
            except Exception as exc:
                log.exception("writing results failed", results=len(results), events=len(events))
                for batch in results:
                    if batch.done and not batch.done.done():
                        batch.done.set_exception(exc)
                continue
            for batch in results:
                if batch.done and not batch.done.done():
                    batch.done.set_result(None)

    async def _write(self, results: list[Batch], events: list[dict[str, Any]]) -> None:
        """One transaction for everything given. A child run whose parent is gone is refused
        with `NotFound` and taken out of ``results`` (its caller started it from a parent it
        remembered): its foreign key would fail the whole transaction, others' work with it."""

        def write(connection: Connection) -> list[Batch]:
            refused = _orphans(connection, results)
            started = [
                batch
                for batch in results
                if batch.run is not None and all(batch is not other for other in refused)
            ]
            runs = [batch.run for batch in started if batch.run is not None]
            blobs = {blob["digest"]: blob for batch in results for _, blob in batch.rows if blob}
            blobs |= {
                batch.run_blob["digest"]: batch.run_blob for batch in started if batch.run_blob
            }
            if blobs:
                connection.execute(self._insert_blob, list(blobs.values()))
            if runs:
                connection.execute(INSERT_RUNS, runs)
                reused = [row for batch in started for row in batch.run_reused]
                if reused:
                    connection.execute(INSERT_REUSED, reused)
            rows = [row for batch in results for row, _ in batch.rows]
            if rows:
                connection.execute(self._upsert_result, rows)
            stored = [*events, *(event for batch in results for event in batch.events)]
            if stored:
                connection.execute(self._insert_event, stored)
            for batch in results:
                if batch.finished is not None:
                    run_id, values = batch.finished
                    connection.execute(UPDATE_RUN, {"finished_run_id": run_id, **values})
            return refused

        if self._database.dialect == "postgresql":
            refused = await self._write_postgres(results, events)
        else:
            refused = await self._database.transaction(write)
        for batch in refused:
            results[:] = [other for other in results if other is not batch]
            if batch.done is not None and not batch.done.done():
                parent = batch.run["parent_run_id"] if batch.run else None
                batch.done.set_exception(NotFound(f"run {parent} not found"))

    async def _write_postgres(
        self, results: list[Batch], events: list[dict[str, Any]]
    ) -> list[Batch]:
        """`_write`'s transaction as one statement (see engine/storage/group_commit.py)."""
        started = [batch for batch in results if batch.run is not None]
        blobs = {blob["digest"]: blob for batch in results for _, blob in batch.rows if blob}
        for batch in started:
            if batch.run_blob is not None:
                blobs[batch.run_blob["digest"]] = batch.run_blob
        finished = []
        for batch in results:
            if batch.finished is not None:
                run_id, values = batch.finished
                assert values.keys() == set(group_commit.FINISHED_COLUMNS), values.keys()
                finished.append({"id": run_id, **values})
        if self._committer is None:
            self._committer = group_commit.Committer(asyncpg_dsn(self._database.engine.url))
        refused = await self._committer.commit(
            runs=[batch.run for batch in started if batch.run is not None],
            reused=[row for batch in started for row in batch.run_reused],
            blobs=list(blobs.values()),
            results=[row for batch in results for row, _ in batch.rows],
            events=[*events, *(event for batch in results for event in batch.events)],
            finished=finished,
        )
        return [batch for batch in started if batch.run and batch.run["id"] in refused]


def _event_row(event: AnyEvent) -> dict[str, Any]:
    data = encode_event(event).decode()
    return {"run_id": event.run_id, "seq": event.seq, "type": event_type(event), "data": data}


def _orphans(connection: Connection, results: list[Batch]) -> list[Batch]:
    """The batches inserting a child run whose parent run is not stored."""
    children = [
        (batch, batch.run["parent_run_id"])
        for batch in results
        if batch.run is not None and batch.run.get("parent_run_id")
    ]
    if not children:
        return []
    parents = list({parent for _, parent in children})
    found = set(connection.scalars(STORED_RUNS, {"run_ids": parents}))
    return [batch for batch, parent in children if parent not in found]


def result_row(
    run_id: str, node_id: str, state: NodeState
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The node_results row for a state, and the blob row when the output is large."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "node_id": node_id,
        "status": state.status,
        "reason": state.reason,
        "cache_key": state.cache_key,
        "output": state.output,
        "output_blob": None,
        "digests": state.digests,
        "origin_run_id": state.origin_run_id or run_id,
        "error": state.error,
        "attempt": state.attempt,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "duration_ms": state.duration_ms,
        "usage": state.usage,
    }
    blob = None
    if state.output:
        data = _encoder.encode(state.output)
        if len(data) > BLOB_THRESHOLD:
            blob = blob_row(data)
            row["output"], row["output_blob"] = None, blob["digest"]
    return row, blob


def blob_row(data: bytes) -> dict[str, Any]:
    """The blobs row storing ``data`` (JSON) once, under its digest."""
    return {"digest": hashlib.sha256(data).hexdigest(), "size": len(data), "data": data.decode()}


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
