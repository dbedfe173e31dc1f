"""``/api/agents``: saved agent configurations that `agent` nodes name by id."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from engine.storage.agents import AgentConfig, AgentRecord
from server.api.deps import EngineDep, PrincipalDep, paged
from server.api.schemas import Cursor, Limit
from server.problems import documented


class AgentPage(msgspec.Struct, kw_only=True):
    items: list[AgentRecord]
    next_cursor: str | None = None


class AgentController(Controller):
    path = "/api/agents"
    tags = ["agents"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Save an agent configuration",
        responses=documented(),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[AgentConfig]
    ) -> AgentRecord:
        return await engine.runs.agents.create(data, owner_id=principal.owner_id)

    @get("/", summary="List saved agents, most recently changed first", responses=documented())
    async def list_agents(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> AgentPage:
        page = await paged(
            lambda: engine.runs.agents.list(owner_id=principal.owner_id, limit=limit, cursor=cursor)
        )
        return AgentPage(items=page.items, next_cursor=page.next_cursor)

    @get("/{agent_id:str}", summary="One saved agent", responses=documented(404))
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, agent_id: FromPath[str]
    ) -> AgentRecord:
        return await engine.runs.agents.get(agent_id, owner_id=principal.owner_id)

    @put(
        "/{agent_id:str}",
        summary="Replace a saved agent's configuration",
        responses=documented(404),
    )
    async def update(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        agent_id: FromPath[str],
        data: JSONBody[AgentConfig],
    ) -> AgentRecord:
        return await engine.runs.agents.update(agent_id, data, owner_id=principal.owner_id)

    @delete(
        "/{agent_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a saved agent",
        responses=documented(404),
    )
    async def remove(
        self, engine: EngineDep, principal: PrincipalDep, agent_id: FromPath[str]
    ) -> None:
        await engine.runs.agents.delete(agent_id, owner_id=principal.owner_id)
