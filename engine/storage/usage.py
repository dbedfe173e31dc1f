"""What the runs' model calls took, grouped (``GET /api/usage``, SPEC §13): runs, tokens and
cost by model, by workflow or by day, from the usage stored with each executed node."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.storage.database import Database
from engine.storage.tables import NodeResultRow, RunRow

__all__ = ["GroupBy", "UsageQueries", "UsageRow"]

GroupBy = Literal["model", "workflow", "day"]


class UsageRow(msgspec.Struct, kw_only=True):
    # The model's name, the workflow's id (its name for runs of no saved workflow: a chat's
    # ``model:<name>``, say) or the day (``YYYY-MM-DD``, UTC) the runs were created.
    key: str
    runs: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class UsageQueries:
    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def usage(
        self,
        group_by: GroupBy,
        *,
        owner_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageRow]:
        """Rows for the runs created in [``since``, ``until``) that ``owner_id`` may see (all
        without one), by ``group_by``, the most costly (then the most tokens) first."""
        query = select(
            RunRow.id,
            RunRow.workflow_id,
            RunRow.workflow_name,
            RunRow.created_at,
            NodeResultRow.usage,
        ).join(NodeResultRow, NodeResultRow.run_id == RunRow.id)
        if owner_id is not None:
            query = query.where(RunRow.owner_id == owner_id)
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        if until is not None:
            query = query.where(RunRow.created_at < until)
        async with self.sessions() as session:
            found = (await session.execute(query)).all()
        totals: dict[str, list[Any]] = defaultdict(lambda: [set(), 0, 0, 0.0])
        for run_id, workflow_id, workflow_name, created_at, usage in found:
            if not isinstance(usage, dict) or not usage:
                continue
            if group_by == "model":
                key = str(usage.get("model") or "unknown")
            elif group_by == "workflow":
                key = workflow_id or workflow_name
            else:
                key = created_at.date().isoformat()
            entry = totals[key]
            entry[0].add(run_id)
            entry[1] += int(usage.get("prompt_tokens", 0))
            entry[2] += int(usage.get("completion_tokens", 0))
            entry[3] += float(usage.get("cost", 0.0))
        rows = [
            UsageRow(key=key, runs=len(runs), prompt_tokens=p, completion_tokens=c, cost=cost)
            for key, (runs, p, c, cost) in totals.items()
        ]
        if group_by == "day":
            return sorted(rows, key=lambda row: row.key)
        return sorted(
            rows, key=lambda row: (-row.cost, -row.prompt_tokens - row.completion_tokens, row.key)
        )
