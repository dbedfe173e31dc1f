"""Node results as workers read and write them, inside the scheduler's transactions."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.results import NodeState
from engine.storage.tables import BlobRow, NodeResultRow, RunRow
from engine.storage.writer import result_row

RESULTS: Table = NodeResultRow.__table__  # type: ignore[assignment]
BLOBS: Table = BlobRow.__table__  # type: ignore[assignment]
_STATE_FIELDS = [name for name in NodeState.__struct_fields__ if name != "output"]
_upsert_result = postgresql.insert(RESULTS)
_upsert_result = _upsert_result.on_conflict_do_update(
    index_elements=["run_id", "node_id"],
    set_={c.name: _upsert_result.excluded[c.name] for c in RESULTS.columns if not c.primary_key},
)
_insert_blob = postgresql.insert(BLOBS).on_conflict_do_nothing(index_elements=["digest"])


async def store_result(
    connection: AsyncConnection, run_id: str, node_id: str, state: NodeState
) -> None:
    """Upsert the node's result row (its output in `blobs` when large)."""
    row, blob = result_row(run_id, node_id, state)
    if blob is not None:
        await connection.execute(_insert_blob, [blob])
    await connection.execute(_upsert_result, [row])


async def load_states(
    connection: AsyncConnection, run_id: str, node_ids: Collection[str]
) -> dict[str, NodeState]:
    """The committed results of these nodes: the run's own, and those it took over by
    reference from earlier runs (``runs.reused``)."""
    wanted = list(node_ids)
    rows = list(
        await connection.execute(
            select(RESULTS).where(RESULTS.c.run_id == run_id, RESULTS.c.node_id.in_(wanted))
        )
    )
    missing = set(wanted) - {row.node_id for row in rows}
    taken: list[Any] = []
    if missing:
        reused: dict[str, str] = (
            await connection.scalar(select(RunRow.reused).where(RunRow.id == run_id))
        ) or {}
        refs = {node: origin for node, origin in reused.items() if node in missing}
        if refs:
            found = await connection.execute(
                select(RESULTS).where(
                    RESULTS.c.run_id.in_(set(refs.values())), RESULTS.c.node_id.in_(refs)
                )
            )
            taken = [row for row in found if refs.get(row.node_id) == row.run_id]
    digests = {row.output_blob for row in (*rows, *taken) if row.output_blob}
    blobs: dict[str, Any] = {}
    if digests:
        found = await connection.execute(
            select(BlobRow.digest, BlobRow.data).where(BlobRow.digest.in_(digests))
        )
        blobs = {digest: msgspec.json.decode(data) for digest, data in found}
    states = {}
    for row in rows:
        output = blobs[row.output_blob] if row.output_blob else row.output
        states[row.node_id] = NodeState(
            output=output, **{name: getattr(row, name) for name in _STATE_FIELDS}
        )
    for row in taken:
        states[row.node_id] = NodeState(
            status="cached",
            reason=f"reused from run {row.run_id}",
            cache_key=row.cache_key,
            output=blobs[row.output_blob] if row.output_blob else row.output,
            duration_ms=0.0,
            digests=row.digests,
            origin_run_id=row.run_id,
        )
    return states
