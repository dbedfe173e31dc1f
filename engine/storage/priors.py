"""What a rerun reads of a parent that is not in memory, straight from the driver and in one
hop (one thread hop on SQLite, one pooled connection on PostgreSQL): the parent's row, its stored
document and the compiled plan of that document (unless the plan is at hand), and each reusable
result's key, digests, origin and output. A rerun of yesterday's run reads its parent from the
database; through the ORM's row objects, per-value type processing and a session per statement,
these reads cost more than the full run of a 40-node workflow.

A run that ended in this process stores its reusable results just after its end, as one JSON
value (`summary`, the runs' ``priors`` column): reading and decoding it costs a tenth of reading
a row per result (a thousand rows took 3.7 ms; their summary, 0.6 ms). Only outputs too large
to repeat there are read, from the blobs that hold them. A run without one (ended by workers, or
stored before) has its rows read."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

import msgspec

from engine.documents.plan import collection_paused
from engine.errors import NotFound
from engine.execution.events import NodeStatus
from engine.execution.results import REUSABLE, NodeState
from engine.storage.database import Database
from engine.storage.result_rows import BLOB_THRESHOLD, blob_digest
from engine.storage.tables import RunRow

__all__ = ["Parent", "ParentRow", "parent_row", "prior_results", "read_parent", "summary"]


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
    "snapshot_overrides{json}, inputs{json}{priors} FROM runs WHERE id = "
)
# The row alone, or (for its results) with its priors.
_SQLITE_ROW = {
    False: _ROW.format(json="", priors="") + "?",
    True: _ROW.format(json="", priors=", priors") + "?",
}
_PG_ROW = {
    False: _ROW.format(json="::text", priors="") + "$1",
    True: _ROW.format(json="::text", priors=", priors") + "$1",
}
_SQLITE_DOCUMENT = (
    "SELECT (SELECT data FROM blobs WHERE digest = ?), "
    "(SELECT data FROM compiled_plans WHERE key = ?)"
)
_PG_DOCUMENT = (
    "SELECT (SELECT data FROM blobs WHERE digest = $1), "
    "(SELECT data FROM compiled_plans WHERE key = $2)"
)
_SQLITE_SUMMARY = "SELECT priors FROM runs WHERE id = ?"
_PG_SUMMARY = "SELECT priors FROM runs WHERE id = $1"
_SQLITE_BLOBS = "SELECT digest, data FROM blobs WHERE digest IN (SELECT value FROM json_each(?))"
_PG_BLOBS = "SELECT digest, data FROM blobs WHERE digest = ANY($1::text[])"
_decode = msgspec.json.decode
# A result row: node, status, key, output and digests (JSON), the run that computed it (None:
# the run the row is of).
Row = tuple[str, NodeStatus, str, str | None, str | None, str | None]
# Rows, with the run they are of.
Rows = list[tuple[str, list[Row]]]


class _Prior(msgspec.Struct, gc=False, omit_defaults=True):
    """A reusable result in a run's summary, with the names of `NodeState`'s fields: decoded,
    it is one. Its output is the JSON the result row holds, unless too large to repeat."""

    status: str
    cache_key: str
    origin_run_id: str
    digests: dict[str, str] | None = None
    output: msgspec.Raw | None = None


class _Summary(msgspec.Struct, gc=False):
    """What a rerun of a run may take over, as the run's end stores it (`summary`)."""

    states: dict[str, _Prior]
    blobs: dict[str, str]  # node: the digest of its output's blob, when not in its state


class _Priors(msgspec.Struct, gc=False):
    """`_Summary` as it is read back."""

    states: dict[str, NodeState]
    blobs: dict[str, str]


_encode_output = msgspec.json.Encoder().encode
_encode_summary = msgspec.json.Encoder().encode
_read_summary = msgspec.json.Decoder(_Priors).decode


def summary(run_id: str, states: Mapping[str, NodeState]) -> str:
    """The reusable ones of ``states`` (of the run ``run_id``, as it holds them when it ends)
    as `prior_results` reads them back: each with its key, digests, output and the run that
    computed it. An output that its result row keeps in `blobs` is named by its digest."""
    priors: dict[str, _Prior] = {}
    blobs: dict[str, str] = {}
    for node_id, state in states.items():
        if state.status not in REUSABLE or state.cache_key is None:
            continue
        output = None
        if state.output is not None:
            data = _encode_output(state.output)
            if len(data) > BLOB_THRESHOLD:
                blobs[node_id] = blob_digest(data)
            else:
                output = msgspec.Raw(data)
        priors[node_id] = _Prior(
            state.status, state.cache_key, state.origin_run_id or run_id, state.digests, output
        )
    return _encode_summary(_Summary(priors, blobs)).decode()


class _Read(NamedTuple):
    """A run's reusable results as read: its summary, else its rows."""

    summary: str | None
    rows: Rows


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
    row, document, plan, read = found
    if owner_id is not None and row.owner_id != owner_id:
        raise NotFound(f"run {run_id} not found")
    if document is None and plan_key(row.snapshot_blob) not in known:
        raise NotFound(f"the document of run {run_id} is not stored")
    return Parent(row, document, plan, await _states(database, run_id, read))


async def prior_results(database: Database, run_id: str) -> dict[str, NodeState]:
    """What a rerun of ``run_id`` may take over: each result it has (its own, and those it took
    over by reference), with the run that computed it."""
    return await _states(database, run_id, await _read(database, run_id))


async def _read(database: Database, run_id: str, *, rows: bool = False) -> _Read:
    """The run's summary, else (or with ``rows``) its rows."""
    if database.dialect == "postgresql":
        async with database.reads() as connection:
            return await _postgresql(connection, run_id, rows=rows)
    return await database.transaction(lambda c: _sqlite_priors(c.connection, run_id, rows=rows))


async def _states(database: Database, run_id: str, read: _Read) -> dict[str, NodeState]:
    """The states of what was read of the run ``run_id``: its summary's, with the outputs it
    names read from their blobs; else its rows'. Made with the collector paused (see
    `collection_paused`): a few small objects a result, that live on."""
    if read.summary is None:
        return _row_states(read.rows)
    with collection_paused():
        priors = _read_summary(read.summary)
    if not priors.blobs:
        return priors.states
    found = await _blob_data(database, sorted(set(priors.blobs.values())))
    if not found.keys() >= set(priors.blobs.values()):  # blobs are kept: never expected
        return _row_states((await _read(database, run_id, rows=True)).rows)
    for node_id, digest in priors.blobs.items():
        priors.states[node_id].output = _decode(found[digest])
    return priors.states


async def _blob_data(database: Database, digests: list[str]) -> dict[str, str]:
    if database.dialect == "postgresql":
        async with database.reads() as connection:
            return dict(await connection.fetch(_PG_BLOBS, digests))

    def read(connection: Any) -> dict[str, str]:
        cursor = connection.connection.cursor()
        try:
            named = _encode_summary(digests).decode()
            return dict(cursor.execute(_SQLITE_BLOBS, (named,)).fetchall())
        finally:
            cursor.close()

    return await database.transaction(read)


def _row_states(found: Rows) -> dict[str, NodeState]:
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


Found = tuple[ParentRow, bytes | str | None, bytes | None, _Read]


def _parent_row(found: Any) -> ParentRow:
    """The row's columns of the parent (those before its priors, when read)."""
    id_, status, owner, workflow, version, root, blob, overrides, inputs = found[:9]
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
    tuples (when the run has no summary) live on until they are made states, so the
    collector is paused meanwhile (see `collection_paused`)."""
    cursor = connection.cursor()
    try:
        found = cursor.execute(_SQLITE_ROW[results], (run_id,)).fetchone()
        if found is None:
            return None
        row = _parent_row(found)
        document = plan = None
        key = plan_key(row.snapshot_blob)
        if key not in known:
            document, plan = cursor.execute(_SQLITE_DOCUMENT, (row.snapshot_blob, key)).fetchone()
        if not results:
            return row, document, plan, _Read(None, [])
        if found[-1] is not None:
            return row, document, plan, _Read(found[-1], [])
        with collection_paused():
            return row, document, plan, _sqlite(cursor, run_id, rows=True)
    finally:
        cursor.close()


def _sqlite_priors(connection: Any, run_id: str, *, rows: bool) -> _Read:
    cursor = connection.cursor()
    try:
        return _sqlite(cursor, run_id, rows=rows)
    finally:
        cursor.close()


def _sqlite(cursor: Any, run_id: str, *, rows: bool) -> _Read:
    if not rows:
        found = cursor.execute(_SQLITE_SUMMARY, (run_id,)).fetchone()
        if found is not None and found[0] is not None:
            return _Read(found[0], [])
    read: Rows = [(run_id, cursor.execute(_SQLITE_OWN, (run_id,)).fetchall())]
    references = cursor.execute(_REFERENCES + "?", (run_id,)).fetchall()
    for origin, nodes in references:
        read.append((origin, cursor.execute(_SQLITE_TAKEN, (origin, nodes)).fetchall()))
    return _Read(None, read)


async def _postgresql_parent(
    database: Database,
    run_id: str,
    plan_key: Callable[[str], str],
    known: Collection[str],
    results: bool,
) -> Found | None:
    async with database.reads() as connection:
        found = await connection.fetchrow(_PG_ROW[results], run_id)
        if found is None:
            return None
        row = _parent_row(found)
        document = plan = None
        key = plan_key(row.snapshot_blob)
        if key not in known:
            document, plan = await connection.fetchrow(_PG_DOCUMENT, row.snapshot_blob, key)
        if not results:
            return row, document, plan, _Read(None, [])
        if found[-1] is not None:
            return row, document, plan, _Read(found[-1], [])
        return row, document, plan, await _postgresql(connection, run_id, rows=True)


async def _postgresql(connection: Any, run_id: str, *, rows: bool) -> _Read:
    if not rows:
        found = await connection.fetchval(_PG_SUMMARY, run_id)
        if found is not None:
            return _Read(found, [])
    read: Rows = [(run_id, list(await connection.fetch(_PG_OWN, run_id)))]
    for origin, nodes in await connection.fetch(_REFERENCES + "$1", run_id):
        read.append((origin, list(await connection.fetch(_PG_TAKEN, origin, _decode(nodes)))))
    return _Read(None, read)
