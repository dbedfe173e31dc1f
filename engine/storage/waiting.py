"""The nodes waiting for a person's answer (SPEC §16), and what each asks: the question is the
`node.waiting` event the node announced, stored with the run's events."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.execution.events import NodeWaiting, decode_event
from engine.storage.tables import EventRow, NodeResultRow, RunRow

__all__ = ["Waiting", "waiting_nodes"]


class Waiting(msgspec.Struct, kw_only=True):
    """A node waiting for an answer, as the inbox lists it."""

    run_id: str
    node: str
    workflow_id: str | None
    workflow_name: str
    owner_id: str | None
    prompt: str
    schema: dict[str, Any]
    choices: list[str] | None = None
    since: str
    deadline: str | None = None
    on_timeout: str | None = None


async def waiting_nodes(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner_id: str | None = None,
    run_id: str | None = None,
) -> list[Waiting]:
    """Every node still waiting (of ``owner_id``'s runs, of run ``run_id``), newest first."""
    query = (
        select(
            RunRow.id,
            RunRow.workflow_id,
            RunRow.workflow_name,
            RunRow.owner_id,
            NodeResultRow.node_id,
            EventRow.seq,
            EventRow.data,
        )
        .join(NodeResultRow, NodeResultRow.run_id == RunRow.id)
        .join(EventRow, EventRow.run_id == RunRow.id)
        .where(
            RunRow.status.in_(("waiting", "running")),  # running: other branches go on
            NodeResultRow.status == "waiting",
            EventRow.type == "node.waiting",
        )
    )
    if owner_id is not None:
        query = query.where(RunRow.owner_id == owner_id)
    if run_id is not None:
        query = query.where(RunRow.id == run_id)
    async with sessions() as session:
        rows = (await session.execute(query.order_by(EventRow.seq))).all()
    found: dict[tuple[str, str], Waiting] = {}
    for run, workflow_id, name, owner, node_id, _, data in rows:
        event = decode_event(data.encode())
        if not isinstance(event, NodeWaiting) or event.node != node_id:
            continue
        question = event.question
        found[run, node_id] = Waiting(  # the last time the node asked
            run_id=run,
            node=node_id,
            workflow_id=workflow_id,
            workflow_name=name,
            owner_id=owner,
            prompt=str(question.get("prompt", "")),
            schema=question.get("schema", {}),
            choices=question.get("choices"),
            since=str(question.get("since", "")),
            deadline=question.get("deadline"),
            on_timeout=question.get("on_timeout"),
        )
    return sorted(found.values(), key=lambda waiting: waiting.since, reverse=True)
