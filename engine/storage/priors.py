"""What a rerun reads of a parent that is not in memory, straight from the driver and in one
hop (one thread hop on SQLite, one pooled connection on PostgreSQL): the parent's row, its stored
document and the compiled plan of that document (unless the plan is at hand), and each reusable
result's key, digests, origin and output. A rerun of yesterday's run reads its parent from the
database; through the ORM's row objects, per-value type processing and a session per statement,
these reads cost more than the full run of a 40-node workflow."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NamedTuple

import msgspec

from engine.documents.plan import collection_paused
from engine.errors import NotFound
from engine.execution.events import NodeStatus
from engine.execution.results import NodeState
from engine.storage.database import Database
from engine.storage.tables import RunRow

__all__ = ["Parent", "ParentRow", "parent_row", "prior_results", "read_parent"]


class ParentRow(NamedTuple):
    """What a rerun takes from its parent's row."""

    id: str
    status: str
    owner_id: str | None
    workflow_id: str | None
    workflow_version: int | None
    root_run_id: str
    snapshot_blob: str
    snapshot_overrides: dict[str, Any]
    inputs: dict[str, Any]


def parent_row(row: RunRow) -> ParentRow:
    """What a rerun takes from a run's row at hand."""
    return ParentRow(*(getattr(row, name) for name in ParentRow._fields))


class Parent(NamedTuple):
    """A parent run as a rerun reads it (see `read_parent`)."""

    row: ParentRow
    # Its stored document (JSON), without its param overrides; None when its plan was
    # known (see `read_parent`).
    document: bytes | str | None
    plan: bytes | None  # the compiled plan of that document, when one is stored
    results: dict[str, NodeState]  # what the rerun may take over (see `prior_results`)


# What a rerun takes of each result: its node, status, key, output (inline, or the JSON of its
# blob: no query of its own), digests, and the run that computed it when not the row's own run
# (NULL for the run's own results: one string fewer a row).
_OUTPUT = (
    "CASE WHEN output_blob IS NULL THEN output{text} "
    "ELSE (SELECT data FROM blobs WHERE digest = output_blob) END"
)
_COLUMNS = "node_id, status, cache_key, {output}, digests{text}, NULLIF(origin_run_id, run_id)"
_SQLITE_COLUMNS = _COLUMNS.format(output=_OUTPUT.format(text=""), text="")
_PG_COLUMNS = _COLUMNS.format(output=_OUTPUT.format(text="::text"), text="::text")
_REUSABLE = "status IN ('succeeded', 'cached') AND cache_key IS NOT NULL"
_SQLITE_OWN = f"SELECT {_SQLITE_COLUMNS} FROM node_results WHERE run_id = ? AND {_REUSABLE}"  # noqa: S608
_SQLITE_TAKEN = f"""
    SELECT {_SQLITE_COLUMNS} FROM node_results
    WHERE run_id = ? AND node_id IN (SELECT value FROM json_each(?)) AND {_REUSABLE}
"""  # noqa: S608 - column names only
_PG_OWN = f"SELECT {_PG_COLUMNS} FROM node_results WHERE run_id = $1 AND {_REUSABLE}"  # noqa: S608
_PG_TAKEN = f"""
    SELECT {_PG_COLUMNS} FROM node_results
    WHERE run_id = $1 AND node_id = ANY($2::text[]) AND {_REUSABLE}
"""  # noqa: S608 - column names only
_REFERENCES = "SELECT origin_run_id, nodes FROM reused_results WHERE run_id = "
_ROW = (
    "SELECT id, status, owner_id, workflow_id, workflow_version, root_run_id, snapshot_blob, "
    "snapshot_overrides{json}, inputs{json} FROM runs WHERE id = "
)
_SQLITE_ROW = _ROW.format(json="") + "?"
_PG_ROW = _ROW.format(json="::text") + "$1"
_SQLITE_DOCUMENT = (
    "SELECT (SELECT data FROM blobs WHERE digest = ?), "
    "(SELECT data FROM compiled_plans WHERE key = ?)"
)
_PG_DOCUMENT = (
    "SELECT (SELECT data FROM blobs WHERE digest = $1), "
    "(SELECT data FROM compiled_plans WHERE key = $2)"
)
_decode = msgspec.json.decode
# A result row: node, status, key, output and digests (JSON), the run that computed it (None:
# the run the row is of).
Row = tuple[str, NodeStatus, str, str | None, str | None, str | None]
# Rows, with the run they are of.
Rows = list[tuple[str, list[Row]]]


async def read_parent(
    database: Database,
    run_id: str,
    plan_key: Callable[[str], str],
    *,
    owner_id: str | None,
    known: Collection[str] = (),
    results: bool = True,
) -> Parent:
    """The run ``run_id`` as its rerun needs it; ``plan_key`` makes the key of a stored
    document's compiled plan from the document's digest. A document whose plan key is ``known``
    (its plan is at hand) is not read; nor are its results without ``results`` (for its plan
    alone). `NotFound` when the run is not stored, ``owner_id`` may not see it, or its document
    is gone."""
    if database.dialect == "postgresql":
        found = await _postgresql_parent(database, run_id, plan_key, known, results)
    else:
        found = await database.transaction(
            lambda c: _sqlite_parent(c.connection, run_id, plan_key, known, results)
        )
    if found is None:
        raise NotFound(f"run {run_id} not found")
    row, document, plan, rows = found
    if owner_id is not None and row.owner_id != owner_id:
        raise NotFound(f"run {run_id} not found")
    if document is None and plan_key(row.snapshot_blob) not in known:
        raise NotFound(f"the document of run {run_id} is not stored")
    return Parent(row, document, plan, _states(rows))


async def prior_results(database: Database, run_id: str) -> dict[str, NodeState]:
    """What a rerun of ``run_id`` may take over: each result it has (its own, and those it took
    over by reference), with the run that computed it."""
    if database.dialect == "postgresql":
        async with database.reads() as connection:
            rows = await _postgresql(connection, run_id)
    else:
        rows = await database.transaction(lambda c: _sqlite_priors(c.connection, run_id))
    return _states(rows)


def _states(found: Rows) -> dict[str, NodeState]:
    """The states of the rows, made with the collector paused (see `collection_paused`): two
    small dicts a row, that live on."""
    states = {}
    decode = _decode
    with collection_paused():
        for run_id, rows in found:
            for node_id, status, cache_key, output, digests, origin in rows:
                states[node_id] = NodeState(
                    status=status,
                    cache_key=cache_key,
                    output=None if output is None else decode(output),
                    digests=None if digests is None else decode(digests),
                    origin_run_id=origin or run_id,
                )
    return states


def _json(text: str | None) -> Any:
    return None if text is None else _decode(text)


Found = tuple[ParentRow, bytes | str | None, bytes | None, Rows]


def _parent_row(found: Any) -> ParentRow:
    id_, status, owner, workflow, version, root, blob, overrides, inputs = found
    return ParentRow(
        id_, status, owner, workflow, version, root, blob, _json(overrides), _json(inputs)
    )


def _sqlite_parent(
    connection: Any,
    run_id: str,
    plan_key: Callable[[str], str],
    known: Collection[str],
    results: bool,
) -> Found | None:
    """On the write thread's connection: one hop for the whole read; its thousands of row
    tuples live on until they are made states, so the collector is paused meanwhile (see
    `collection_paused`)."""
    cursor = connection.cursor()
    try:
        found = cursor.execute(_SQLITE_ROW, (run_id,)).fetchone()
        if found is None:
            return None
        row = _parent_row(found)
        document = plan = None
        key = plan_key(row.snapshot_blob)
        if key not in known:
            document, plan = cursor.execute(_SQLITE_DOCUMENT, (row.snapshot_blob, key)).fetchone()
        if not results:
            return row, document, plan, []
        with collection_paused():
            return row, document, plan, _sqlite(cursor, run_id)
    finally:
        cursor.close()


def _sqlite_priors(connection: Any, run_id: str) -> Rows:
    cursor = connection.cursor()
    try:
        return _sqlite(cursor, run_id)
    finally:
        cursor.close()


def _sqlite(cursor: Any, run_id: str) -> Rows:
    rows: Rows = [(run_id, cursor.execute(_SQLITE_OWN, (run_id,)).fetchall())]
    references = cursor.execute(_REFERENCES + "?", (run_id,)).fetchall()
    for origin, nodes in references:
        rows.append((origin, cursor.execute(_SQLITE_TAKEN, (origin, nodes)).fetchall()))
    return rows


async def _postgresql_parent(
    database: Database,
    run_id: str,
    plan_key: Callable[[str], str],
    known: Collection[str],
    results: bool,
) -> Found | None:
    async with database.reads() as connection:
        found = await connection.fetchrow(_PG_ROW, run_id)
        if found is None:
            return None
        row = _parent_row(found)
        document = plan = None
        key = plan_key(row.snapshot_blob)
        if key not in known:
            document, plan = await connection.fetchrow(_PG_DOCUMENT, row.snapshot_blob, key)
        return row, document, plan, await _postgresql(connection, run_id) if results else []


async def _postgresql(connection: Any, run_id: str) -> Rows:
    rows: Rows = [(run_id, list(await connection.fetch(_PG_OWN, run_id)))]
    for origin, nodes in await connection.fetch(_REFERENCES + "$1", run_id):
        rows.append((origin, list(await connection.fetch(_PG_TAKEN, origin, _decode(nodes)))))
    return rows
