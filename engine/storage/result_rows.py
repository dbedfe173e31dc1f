"""A node result as a `node_results` row, defined once for every path that writes or reads one
(the SQLite and PostgreSQL writers, and workers on asyncpg): every field of `NodeState` is a
column, and the column list below is the table's own, so a new column is one change."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from sqlalchemy import JSON, Table

from engine.execution.results import NodeState
from engine.storage.tables import NodeResultRow

__all__ = [
    "BLOB_THRESHOLD",
    "JSON_COLUMNS",
    "RESULT_COLUMNS",
    "RESULT_FIELDS",
    "Row",
    "blob_digest",
    "blob_row",
    "placeholders",
    "result_row",
    "state_from_row",
]

NODE_RESULTS: Table = NodeResultRow.__table__  # type: ignore[assignment]
# Every column, in the table's order: the run, the node, then the state's fields.
RESULT_COLUMNS: tuple[str, ...] = tuple(column.name for column in NODE_RESULTS.columns)
JSON_COLUMNS: frozenset[str] = frozenset(
    column.name for column in NODE_RESULTS.columns if isinstance(column.type, JSON)
)
# The state's fields stored as they are (the output may be in `blobs` instead).
RESULT_FIELDS: tuple[str, ...] = tuple(
    name for name in NodeState.__struct_fields__ if name != "output"
)
BLOB_THRESHOLD = 4096  # bytes of JSON above which an output is stored once, by digest
# A node_results row, and the blob row holding its output when that is large.
Row = tuple[dict[str, Any], dict[str, Any] | None]
_encoder = msgspec.json.Encoder()


def result_row(run_id: str, node_id: str, state: NodeState) -> Row:
    """The node_results row for a state, and the blob row when the output is large."""
    row: dict[str, Any] = {"run_id": run_id, "node_id": node_id, "output_blob": None}
    for name in RESULT_FIELDS:
        row[name] = getattr(state, name)
    row["output"] = state.output
    row["origin_run_id"] = state.origin_run_id or run_id
    blob = None
    if state.output:
        data = _encoder.encode(state.output)
        if len(data) > BLOB_THRESHOLD:
            blob = blob_row(data)
            row["output"], row["output_blob"] = None, blob["digest"]
    return row, blob


def blob_row(data: bytes) -> dict[str, Any]:
    """The blobs row storing ``data`` (JSON) once, under its digest."""
    return {"digest": blob_digest(data), "size": len(data), "data": data.decode()}


def blob_digest(data: bytes) -> str:
    """The digest ``data`` (JSON) is stored under in `blobs`."""
    return hashlib.sha256(data).hexdigest()


def state_from_row(row: Any, output: dict[str, Any] | None) -> NodeState:
    """A node_results row (anything with the columns as attributes) as a state."""
    return NodeState(output=output, **{name: getattr(row, name) for name in RESULT_FIELDS})


def placeholders(first: int, columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    """asyncpg parameters for ``columns`` from ``$first`` on, JSON ones given as text."""
    return ", ".join(
        f"${first + index}::text::json" if name in JSON_COLUMNS else f"${first + index}"
        for index, name in enumerate(columns)
    )
