"""Commits node results and events with group commit: whatever finished meanwhile goes in one
transaction, and each node's result is durable before the executor announces it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.errors import NotFound
from engine.events import AnyEvent, encode_event, event_type
from engine.results import NodeState
from engine.storage.database import Database
from engine.storage.tables import BlobRow, EventRow, NodeResultRow, RunRow

log = structlog.get_logger("nodeloom.storage")

# A node_results row, and the blob row holding its output when that is large.
Row = tuple[dict[str, Any], dict[str, Any] | None]


@dataclass(slots=True)
class Batch:
    """What one caller waits to see committed: a new run's row, result rows, events, or the
    columns a run finished with. In one transaction they go in that order."""

    rows: list[Row] = field(default_factory=list)
    run: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: tuple[str, dict[str, Any]] | None = None
    done: asyncio.Future[None] | None = None


BLOB_THRESHOLD = 4096  # bytes of JSON above which an output is stored once, by digest
_encoder = msgspec.json.Encoder()

NODE_RESULTS: Table = NodeResultRow.__table__  # type: ignore[assignment]
BLOBS: Table = BlobRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
RUNS: Table = RunRow.__table__  # type: ignore[assignment]


def insert_for(database: Database, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (both spell it the same way)."""
    if database.dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class ResultWriter:
    """The executor's `ResultStore` for one database, shared by every run of a process."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._results: list[Batch] = []
        self._events: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        upsert = insert_for(database, NODE_RESULTS)
        columns = {
            c.name: upsert.excluded[c.name]
            for c in NODE_RESULTS.columns
            if c.name not in ("run_id", "node_id")
        }
        self._upsert_result = upsert.on_conflict_do_update(
            index_elements=["run_id", "node_id"], set_=columns
        )
        self._insert_blob = insert_for(database, BLOBS).on_conflict_do_nothing(
            index_elements=["digest"]
        )
        self._insert_event = insert_for(database, EVENTS).on_conflict_do_nothing(
            index_elements=["run_id", "seq"]
        )

    async def run_started(self, row: RunRow) -> None:
        """Insert a new run's row (with whatever else is being committed). `NotFound` when the
        run it is a child of is no longer stored (its workflow was deleted): nothing is."""
        values = {
            column.key: getattr(row, column.key)
            for column in RunRow.__mapper__.columns
            if column.key in row.__dict__  # the rest take their defaults
        }
        await self._commit(Batch(run=values))

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
            runs = [batch.run for batch in results if batch.run is not None]
            if refused:
                runs = [run for run in runs if all(run is not batch.run for batch in refused)]
            if runs:
                connection.execute(RUNS.insert(), runs)
            rows = [row for batch in results for row, _ in batch.rows]
            blobs = {blob["digest"]: blob for batch in results for _, blob in batch.rows if blob}
            if blobs:
                connection.execute(self._insert_blob, list(blobs.values()))
            if rows:
                connection.execute(self._upsert_result, rows)
            stored = [*events, *(event for batch in results for event in batch.events)]
            if stored:
                connection.execute(self._insert_event, stored)
            for batch in results:
                if batch.finished is not None:
                    run_id, values = batch.finished
                    connection.execute(update(RunRow).where(RunRow.id == run_id).values(**values))
            return refused

        for batch in await self._database.transaction(write):
            results[:] = [other for other in results if other is not batch]
            if batch.done is not None and not batch.done.done():
                parent = batch.run["parent_run_id"] if batch.run else None
                batch.done.set_exception(NotFound(f"run {parent} not found"))


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
    parents = {parent for _, parent in children}
    found = set(connection.scalars(select(RunRow.id).where(RunRow.id.in_(parents))))
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
            digest = hashlib.sha256(data).hexdigest()
            blob = {"digest": digest, "size": len(data), "data": data.decode()}
            row["output"], row["output_blob"] = None, digest
    return row, blob
