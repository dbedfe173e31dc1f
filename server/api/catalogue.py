"""``/api/health``, ``/api/node-types``, ``/api/models`` and ``/api/tools``: what the server has
to offer."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, get
from sqlalchemy import text

from engine.models.service import ModelStatus
from server.api.deps import EngineDep
from server.problems import documented
from server.state import Engine


class DatabaseHealth(msgspec.Struct, kw_only=True):
    ok: bool
    dialect: str
    error: str | None = None


class ModelsHealth(msgspec.Struct, kw_only=True):
    """Cheap to tell: availability (which reads model files) is for ``GET /api/models``."""

    registered: int
    loaded: int
    memory_budget: int


class Health(msgspec.Struct, kw_only=True):
    status: str
    database: DatabaseHealth
    models: ModelsHealth
    active_runs: int


class NodeTypeInfo(msgspec.Struct, kw_only=True):
    type: str
    title: str
    category: str
    description: str
    version: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    dynamic_ports: bool
    params_schema: dict[str, Any]


class NodeTypes(msgspec.Struct, kw_only=True):
    items: list[NodeTypeInfo]


class ToolInfo(msgspec.Struct, kw_only=True):
    name: str
    description: str
    # The JSON Schema of the tool's `args`.
    schema: dict[str, Any]
    # `builtin`, `plugin` or `mcp:<server>`.
    source: str


class Tools(msgspec.Struct, kw_only=True):
    items: list[ToolInfo]
    # The MCP servers of mcp.toml whose tools could not be listed at start-up, with why.
    unreachable: dict[str, str]


class Models(msgspec.Struct, kw_only=True):
    models_dir: str | None
    memory_budget: int | None
    items: list[ModelStatus]


async def model_statuses(engine: Engine) -> list[ModelStatus]:
    """Availability reads model file headers: done off the event loop."""
    if engine.models is None:
        return []
    return await asyncio.to_thread(engine.models.status)


class HealthController(Controller):
    path = "/api/health"
    tags = ["server"]  # noqa: RUF012

    @get(
        "/",
        summary="Liveness, with database and model status (needs no token)",
        responses=documented(),
    )
    async def health(self, engine: EngineDep) -> Health:
        database = DatabaseHealth(ok=True, dialect=engine.database.dialect)
        try:
            async with engine.database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - the health check reports it instead of failing
            database = DatabaseHealth(ok=False, dialect=database.dialect, error=str(exc))
        models = engine.models
        return Health(
            status="ok" if database.ok else "degraded",
            database=database,
            models=ModelsHealth(
                registered=len(models.names) if models else 0,
                loaded=sum(name in models.pool for name in models.names) if models else 0,
                memory_budget=models.budget if models else 0,
            ),
            active_runs=len(engine.runs.active),
        )


class NodeTypesController(Controller):
    path = "/api/node-types"
    tags = ["catalogue"]  # noqa: RUF012

    @get(
        "/",
        summary="The node catalogue: type, title, category, ports, params JSON Schema",
        responses=documented(),
    )
    async def node_types(self, engine: EngineDep) -> NodeTypes:
        return NodeTypes(items=msgspec.convert(engine.registry.catalogue, list[NodeTypeInfo]))


class ModelsController(Controller):
    path = "/api/models"
    tags = ["catalogue"]  # noqa: RUF012

    @get(
        "/",
        summary="The model registry with each model's availability (and why not)",
        responses=documented(),
    )
    async def models(self, engine: EngineDep) -> Models:
        service = engine.models
        return Models(
            models_dir=str(service.registry.directory) if service else None,
            memory_budget=service.budget if service else None,
            items=await model_statuses(engine),
        )


class ToolsController(Controller):
    path = "/api/tools"
    tags = ["catalogue"]  # noqa: RUF012

    @get(
        "/",
        summary="Every tool `tool` and `agent` nodes may call, with its args JSON Schema",
        responses=documented(),
    )
    async def tools(self, engine: EngineDep) -> Tools:
        found = engine.tools.describe() if engine.tools is not None else []
        return Tools(
            items=msgspec.convert(found, list[ToolInfo]), unreachable=engine.mcp_unreachable
        )
