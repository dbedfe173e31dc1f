"""A group commit on PostgreSQL as one statement: every row goes as a JSON array, and
`json_populate_recordset` makes table rows of it. One round trip, and no transaction to begin and
commit around it (a statement is atomic): through SQLAlchemy, the same writes took a round trip
per statement and about four times as long.

The commits go one after the other on a connection of their own, one per database a process
uses (`Database.committer`: every run service's writer shares it), where the statement stays
prepared with one generic plan: planned again for each commit (as on a pool's many
connections), it costs more than running it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec

from engine.storage.tables import NodeResultRow

__all__ = ["COMMIT", "FINISHED_COLUMNS", "Committer", "commit"]

_encoder = msgspec.json.Encoder()

_RESULT_COLUMNS = [c.name for c in NodeResultRow.__table__.columns if not c.primary_key]

# A run whose parent is not stored is refused (its id comes back): neither it nor anything of
# it in the same commit is stored. Foreign keys to rows inserted by the same statement are
# checked at its end.
COMMIT = f"""
WITH new_runs AS (
    SELECT * FROM json_populate_recordset(NULL::runs, $1::json)
), refused AS (
    SELECT new.id FROM new_runs AS new
    WHERE new.parent_run_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM runs AS parent WHERE parent.id = new.parent_run_id)
), stored_runs AS (
    INSERT INTO runs
    SELECT new.* FROM new_runs AS new WHERE new.id NOT IN (SELECT id FROM refused)
), stored_reused AS (
    INSERT INTO reused_results
    SELECT reused.* FROM json_populate_recordset(NULL::reused_results, $2::json) AS reused
    WHERE reused.run_id NOT IN (SELECT id FROM refused)
    ON CONFLICT (run_id, origin_run_id) DO UPDATE
        SET nodes = (reused_results.nodes::jsonb || excluded.nodes::jsonb)::json
), stored_blobs AS (
    INSERT INTO blobs SELECT * FROM json_populate_recordset(NULL::blobs, $3::json)
    ON CONFLICT (digest) DO NOTHING
), stored_results AS (
    INSERT INTO node_results
    SELECT result.* FROM json_populate_recordset(NULL::node_results, $4::json) AS result
    WHERE result.run_id NOT IN (SELECT id FROM refused)
    ON CONFLICT (run_id, node_id) DO UPDATE SET
        {", ".join(f"{name} = excluded.{name}" for name in _RESULT_COLUMNS)}
), stored_events AS (
    INSERT INTO events
    SELECT event.* FROM json_populate_recordset(NULL::events, $5::json) AS event
    WHERE event.run_id NOT IN (SELECT id FROM refused)
    ON CONFLICT (run_id, seq) DO NOTHING
), finished AS (
    UPDATE runs SET status = ended.status, outputs = ended.outputs, error = ended.error,
        finished_at = ended.finished_at, last_seq = ended.last_seq
    FROM json_populate_recordset(NULL::runs, $6::json) AS ended
    WHERE runs.id = ended.id
), summarised AS (
    UPDATE runs SET priors = given.priors
    FROM json_populate_recordset(NULL::runs, $7::json) AS given
    WHERE runs.id = given.id AND runs.status = given.status AND runs.last_seq = given.last_seq
)
SELECT id FROM refused
"""  # noqa: S608 - what is interpolated is our own column names

FINISHED_COLUMNS = ("status", "outputs", "error", "finished_at", "last_seq")


class Committer:
    """The group commits of one process, on its own connection (made again if it is lost)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._turn = asyncio.Lock()  # writers sharing it commit one after the other

    async def commit(self, **rows: Sequence[dict[str, Any]]) -> set[str]:
        """`commit` on this connection."""
        async with self._turn:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(
                    self._dsn, server_settings={"plan_cache_mode": "force_generic_plan"}
                )
            return await commit(self._connection, **rows)

    async def close(self) -> None:
        async with self._turn:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None


async def commit(
    connection: asyncpg.Connection,
    *,
    runs: Sequence[dict[str, Any]],
    reused: Sequence[dict[str, Any]],
    blobs: Sequence[dict[str, Any]],
    results: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    finished: Sequence[dict[str, Any]],
    priors: Sequence[dict[str, Any]],
) -> set[str]:
    """Insert the rows given, store how runs ``finished`` (each an ``id`` and the
    `FINISHED_COLUMNS`) and the ``priors`` of runs that ended before (each an ``id``, the
    ``status`` and ``last_seq`` it ended with, kept only while they stand, and the
    ``priors``), in one statement; returns the ids of the runs refused because their parent
    run is not stored (nothing of theirs is stored). A run finishing here must have been
    inserted before (a run inserted here is inserted as it finished), and has no priors
    here."""
    # One row per key: a statement cannot update a row twice (the last one stands).
    latest = {(row["run_id"], row["node_id"]): row for row in results}
    refused = await connection.fetch(
        COMMIT,
        *(
            _encoder.encode(rows).decode()
            for rows in (runs, reused, blobs, list(latest.values()), events, finished, priors)
        ),
    )
    return {row["id"] for row in refused}
