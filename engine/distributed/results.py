"""Node results as workers read and write them, inside the scheduler's transactions.

These run on the asyncpg connection itself: a worker commits a few statements per node, and
SQLAlchemy's per-statement cost would be most of a short node's overhead. JSON goes in and out
as text (``::text`` casts), so the connection's JSON codec does not matter.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec

from engine.execution.results import NodeState
from engine.storage.result_rows import (
    JSON_COLUMNS,
    RESULT_COLUMNS,
    RESULT_FIELDS,
    placeholders,
    result_row,
)

__all__ = ["SELECTED_COLUMNS", "load_states", "result_values", "store_result"]

_UPSERT_RESULT = f"""
    INSERT INTO node_results ({", ".join(RESULT_COLUMNS)}) VALUES ({placeholders(1)})
    ON CONFLICT (run_id, node_id) DO UPDATE SET
    {", ".join(f"{name} = excluded.{name}" for name in RESULT_COLUMNS[2:])}
"""  # noqa: S608 - column names only
_INSERT_BLOB = """
    INSERT INTO blobs (digest, size, data) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING
"""
# JSON comes out as text.
SELECTED_COLUMNS = ", ".join(
    f"{name}::text AS {name}" if name in JSON_COLUMNS else name for name in RESULT_COLUMNS
)
_SELECT_RESULTS = f"""
    SELECT {SELECTED_COLUMNS}
    FROM node_results WHERE run_id = ANY($1::text[]) AND node_id = ANY($2::text[])
"""  # noqa: S608 - column names only
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def _json(value: Any) -> str | None:
    return None if value is None else _encode(value).decode()


async def result_values(
    connection: asyncpg.Connection, run_id: str, node_id: str, state: NodeState
) -> list[Any]:
    """The values of the node's result row in the order of `RESULT_COLUMNS`, JSON as text; a
    large output is stored in `blobs` first, and the row refers to it."""
    row, blob = result_row(run_id, node_id, state)
    if blob is not None:
        await connection.execute(_INSERT_BLOB, blob["digest"], blob["size"], blob["data"])
    return [_json(row[name]) if name in JSON_COLUMNS else row[name] for name in RESULT_COLUMNS]


async def store_result(
    connection: asyncpg.Connection, run_id: str, node_id: str, state: NodeState
) -> None:
    """Upsert the node's result row (its output in `blobs` when large)."""
    await connection.execute(
        _UPSERT_RESULT, *await result_values(connection, run_id, node_id, state)
    )


async def load_states(
    connection: asyncpg.Connection,
    run_id: str,
    node_ids: Collection[str],
    rows: list[asyncpg.Record] | None = None,
) -> dict[str, NodeState]:
    """The committed results of these nodes: the run's own (``rows``, when they were read
    already), and those it took over by reference from earlier runs (``reused_results``)."""
    wanted = list(node_ids)
    if not wanted:
        return {}
    if rows is None:
        rows = await connection.fetch(_SELECT_RESULTS, [run_id], wanted)
    missing = set(wanted) - {row["node_id"] for row in rows}
    taken: list[asyncpg.Record] = []
    if missing:
        found = await connection.fetch(
            "SELECT origin_run_id, nodes::text FROM reused_results WHERE run_id = $1", run_id
        )
        refs = {
            node: origin for origin, nodes in found for node in _decode(nodes) if node in missing
        }
        if refs:
            found = await connection.fetch(_SELECT_RESULTS, list(set(refs.values())), list(refs))
            taken = [row for row in found if refs.get(row["node_id"]) == row["run_id"]]
    digests = [row["output_blob"] for row in (*rows, *taken) if row["output_blob"]]
    blobs: dict[str, Any] = {}
    if digests:
        found = await connection.fetch(
            "SELECT digest, data FROM blobs WHERE digest = ANY($1::text[])", digests
        )
        blobs = {digest: _decode(data) for digest, data in found}

    def output(row: asyncpg.Record) -> Any:
        if row["output_blob"]:
            return blobs[row["output_blob"]]
        return _decode(row["output"]) if row["output"] is not None else None

    def optional(text: str | None) -> Any:
        return None if text is None else _decode(text)

    states = {}
    for row in rows:
        states[row["node_id"]] = NodeState(
            output=output(row),
            **{
                name: optional(row[name]) if name in JSON_COLUMNS else row[name]
                for name in RESULT_FIELDS
            },
        )
    for row in taken:
        states[row["node_id"]] = NodeState.reused(
            row["run_id"],
            cache_key=row["cache_key"],
            output=output(row),
            digests=optional(row["digests"]),
        )
    return states
