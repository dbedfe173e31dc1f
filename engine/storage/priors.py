"""What a rerun may take over from its parent, read straight from the driver: each reusable
result's key, digests, origin and output, in a few statements. A rerun of yesterday's run reads
its parent from the database, and through the ORM's row objects and per-value type processing
that read cost a tenth of a 1,000-node run by itself."""

from __future__ import annotations

from typing import Any

import msgspec

from engine.execution.results import NodeState
from engine.storage.database import Database

__all__ = ["prior_results"]

_COLUMNS = "node_id, run_id, status, cache_key, output, output_blob, digests, origin_run_id"
_REUSABLE = "status IN ('succeeded', 'cached') AND cache_key IS NOT NULL"
_SQLITE_OWN = f"SELECT {_COLUMNS} FROM node_results WHERE run_id = ? AND {_REUSABLE}"  # noqa: S608
_SQLITE_TAKEN = f"""
    SELECT {_COLUMNS} FROM node_results
    WHERE run_id = ? AND node_id IN (SELECT value FROM json_each(?)) AND {_REUSABLE}
"""  # noqa: S608 - column names only
_SQLITE_BLOBS = "SELECT digest, data FROM blobs WHERE digest IN (SELECT value FROM json_each(?))"
_PG_COLUMNS = (
    "node_id, run_id, status, cache_key, output::text, output_blob, digests::text, "
    "origin_run_id"
)
_PG_OWN = f"SELECT {_PG_COLUMNS} FROM node_results WHERE run_id = $1 AND {_REUSABLE}"  # noqa: S608
_PG_TAKEN = f"""
    SELECT {_PG_COLUMNS} FROM node_results
    WHERE run_id = $1 AND node_id = ANY($2::text[]) AND {_REUSABLE}
"""  # noqa: S608 - column names only
_PG_BLOBS = "SELECT digest, data FROM blobs WHERE digest = ANY($1::text[])"
_REFERENCES = "SELECT origin_run_id, nodes FROM reused_results WHERE run_id = "
_decode = msgspec.json.decode
_encode = msgspec.json.encode
Row = tuple[str, str, Any, str, str | None, str | None, str | None, str | None]


async def prior_results(database: Database, run_id: str) -> dict[str, NodeState]:
    """What a rerun of ``run_id`` may take over: each result it has (its own, and those it took
    over by reference), with the run that computed it."""
    if database.dialect == "postgresql":
        rows, blobs = await _postgresql(database, run_id)
    else:
        rows, blobs = await database.transaction(lambda c: _sqlite(c.connection, run_id))
    states = {}
    for node_id, row_run, status, cache_key, output, output_blob, digests, origin in rows:
        states[node_id] = NodeState(
            status=status,
            cache_key=cache_key,
            output=blobs[output_blob] if output_blob else _json(output),
            digests=_json(digests),
            origin_run_id=origin or row_run,
        )
    return states


def _json(text: str | None) -> Any:
    return None if text is None else _decode(text)


def _sqlite(connection: Any, run_id: str) -> tuple[list[Row], dict[str, Any]]:
    """On the write thread's connection: one hop for the whole read."""
    cursor = connection.cursor()
    try:
        rows: list[Row] = cursor.execute(_SQLITE_OWN, (run_id,)).fetchall()
        references = cursor.execute(_REFERENCES + "?", (run_id,)).fetchall()
        for origin, nodes in references:
            rows += cursor.execute(_SQLITE_TAKEN, (origin, nodes)).fetchall()
        wanted = [row[5] for row in rows if row[5]]
        blobs = {}
        if wanted:
            found = cursor.execute(_SQLITE_BLOBS, (_encode(wanted).decode(),)).fetchall()
            blobs = {digest: _decode(data) for digest, data in found}
    finally:
        cursor.close()
    return rows, blobs


async def _postgresql(database: Database, run_id: str) -> tuple[list[Row], dict[str, Any]]:
    async with database.reads() as connection:
        rows: list[Any] = list(await connection.fetch(_PG_OWN, run_id))
        for origin, nodes in await connection.fetch(_REFERENCES + "$1", run_id):
            found = await connection.fetch(_PG_TAKEN, origin, _decode(nodes))
            rows += found
        wanted = [row[5] for row in rows if row[5]]
        blobs = {}
        if wanted:
            found = await connection.fetch(_PG_BLOBS, wanted)
            blobs = {digest: _decode(data) for digest, data in found}
    return [tuple(row) for row in rows], blobs
