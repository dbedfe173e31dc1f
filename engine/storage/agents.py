"""Saved agents: named configurations (model, system prompt, tools, limits) that `agent` nodes
refer to by id. A run inlines the saved configuration into its snapshot, so the run records
exactly what the agent was and a later edit of the agent never changes a stored run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.documents.document import Workflow
from engine.errors import NotFound
from engine.records import Page
from engine.storage.database import Database
from engine.storage.keys import keyset_page, new_id, now
from engine.storage.tables import AgentRow

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_STEP_MAX_TOKENS",
    "DEFAULT_SYSTEM_PROMPT",
    "AgentConfig",
    "AgentRecord",
    "AgentStore",
    "decode_config",
]

# What an agent does when neither its node nor its saved agent says (the agent node too).
DEFAULT_MAX_STEPS = 5
DEFAULT_STEP_MAX_TOKENS = 256  # the most tokens one step may take
DEFAULT_SYSTEM_PROMPT = "You solve the task step by step, using the tools when they help."


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a saved agent is; every field but `name` and `model` has a default."""

    # A name and a model that are more than blanks.
    name: Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
    model: Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    tools: list[str] = []
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] = 0.0
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=50)] = DEFAULT_MAX_STEPS
    # The most tokens one step may take.
    max_tokens: Annotated[int, msgspec.Meta(ge=16, le=100_000)] = DEFAULT_STEP_MAX_TOKENS
    # Models tried in order when `model` fails.
    fallbacks: list[str] = []

    def node_params(self) -> dict[str, Any]:
        """The `agent` node params this configuration stands for."""
        return {
            "model": self.model,
            "system_prompt": self.system_prompt,
            "tools": list(self.tools),
            "temperature": self.temperature,
            "max_steps": self.max_steps,
            "max_tokens": self.max_tokens,
            "fallbacks": list(self.fallbacks),
        }


class AgentRecord(msgspec.Struct, kw_only=True):
    id: str
    config: AgentConfig
    created_at: datetime
    updated_at: datetime


def decode_config(data: Mapping[str, Any]) -> AgentConfig:
    """An `AgentConfig` from builtins; `msgspec.ValidationError` names the offending field."""
    return msgspec.convert(data, AgentConfig)


class AgentStore:
    """Saved agents in the `agents` table; each method is its own transaction."""

    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create(self, config: AgentConfig, *, owner_id: str | None = None) -> AgentRecord:
        stamp = now()
        row = AgentRow(
            id=new_id("ag"),
            owner_id=owner_id,
            name=config.name,
            config=msgspec.to_builtins(config),
            created_at=stamp,
            updated_at=stamp,
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return _record(row)

    async def get(self, agent_id: str, *, owner_id: str | None = None) -> AgentRecord:
        async with self.sessions() as session:
            row = await session.get(AgentRow, agent_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"agent {agent_id} not found")
        return _record(row)

    async def list(
        self, *, owner_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        query = select(AgentRow)
        if owner_id is not None:
            query = query.where(AgentRow.owner_id == owner_id)
        rows, next_cursor = await keyset_page(
            self.sessions, query, AgentRow.updated_at, AgentRow.id, limit=limit, cursor=cursor
        )
        return Page(items=[_record(row) for row in rows], next_cursor=next_cursor)

    async def update(
        self, agent_id: str, config: AgentConfig, *, owner_id: str | None = None
    ) -> AgentRecord:
        async with self.sessions.begin() as session:
            row = await session.get(AgentRow, agent_id, with_for_update=True)
            if row is None or (owner_id is not None and row.owner_id != owner_id):
                raise NotFound(f"agent {agent_id} not found")
            row.name = config.name
            row.config = msgspec.to_builtins(config)
            row.updated_at = now()
        return _record(row)

    async def delete(self, agent_id: str, *, owner_id: str | None = None) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(AgentRow, agent_id)
            if row is None or (owner_id is not None and row.owner_id != owner_id):
                raise NotFound(f"agent {agent_id} not found")
            await session.delete(row)

    async def inline(self, workflow: Workflow, *, owner_id: str | None = None) -> Workflow:
        """``workflow`` with each `agent` node's saved configuration copied into its params
        (params set on the node win); unchanged when no node names a saved agent."""
        nodes = []
        changed = False
        for node in workflow.nodes:
            agent_id = node.params.get("agent") if node.type == "agent" else None
            if not isinstance(agent_id, str):
                nodes.append(node)
                continue
            try:
                saved = await self.get(agent_id, owner_id=owner_id)
            except NotFound:
                raise NotFound(
                    f"node {node.id!r}: agent {agent_id} not found (params.agent)"
                ) from None
            params = {**saved.config.node_params(), **node.params}
            nodes.append(msgspec.structs.replace(node, params=params))
            changed = True
        return msgspec.structs.replace(workflow, nodes=nodes) if changed else workflow


def _record(row: AgentRow) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        config=decode_config(row.config),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
