"""The Litestar app: every controller of SPEC §6, problem details for every error, the engine
owned by the lifespan. `create_app` builds one over any settings, so tests and `nodeloom serve`
use the same code; more ASGI apps (the canvas) can be mounted beside the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler

from engine.nodes.registry import NodeRegistry
from server.api.accounts import AuthController, TokenController
from server.api.agents import AgentController
from server.api.batches import BatchController, BatchStartController
from server.api.catalogue import (
    HealthController,
    ModelsController,
    NodeTypesController,
    ToolsController,
)
from server.api.collections import CollectionController
from server.api.conversations import ConversationController
from server.api.deps import get_principal
from server.api.evaluations import DatasetController, EvaluationController
from server.api.events import RunEventsController
from server.api.exports import ExportController
from server.api.files import FileController
from server.api.hooks import HookController, HookReceiver
from server.api.inbox import AnswerController, InboxController
from server.api.openai import OpenAIController
from server.api.ports import PortsController
from server.api.replays import PinController, ReplayController
from server.api.runs import RunController, StartController
from server.api.schedules import ScheduleController
from server.api.usage import UsageController
from server.api.workflows import WorkflowController
from server.auth import AuthMiddleware
from server.config import ServerConfig
from server.logs import RequestLogMiddleware
from server.mcp import mcp_route
from server.openapi import ExactJson, ExactStructs, ExactSwagger, allow_every_method
from server.problems import EXCEPTION_HANDLERS, ApiError, ErrorItem
from server.state import engine_lifespan, get_engine
from server.strict import strict_json_bodies

VERSION = "0.1.0"
BODY_METHODS = ("POST", "PUT", "PATCH")

API: list[ControllerRouterHandler] = [
    HealthController,
    NodeTypesController,
    PortsController,
    ModelsController,
    ToolsController,
    WorkflowController,
    StartController,
    BatchStartController,
    RunController,
    AnswerController,
    ReplayController,
    PinController,
    DatasetController,
    EvaluationController,
    CollectionController,
    InboxController,
    RunEventsController,
    ExportController,
    BatchController,
    AgentController,
    ConversationController,
    UsageController,
    FileController,
    HookController,
    HookReceiver,
    ScheduleController,
    AuthController,
    TokenController,
    OpenAIController,
    mcp_route,
]


async def json_bodies_only(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A guard: a handler that decodes a JSON body gets one declared as JSON (else 415).
    A coroutine, so that Litestar does not run it in a thread."""
    if handler.parsed_data_field is None or connection.scope.get("method") not in BODY_METHODS:
        return
    content_type = connection.headers.get("content-type")
    if content_type is None:
        if connection.headers.get("content-length", "0") in ("0", "") and not (
            connection.headers.get("transfer-encoding")
        ):
            return
        media = ""
    else:
        media = content_type.partition(";")[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    detail = (
        f"the request body must be JSON (Content-Type: application/json), got {media or 'none'!r}"
    )
    raise ApiError(415, detail, errors=[ErrorItem("unsupported_media_type", detail)])


def create_app(
    config: ServerConfig | None = None,
    *,
    registry: NodeRegistry | None = None,
    extra_routes: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """The app; its lifespan opens the database, recovers interrupted runs, and closes all."""
    config = config or ServerConfig.from_env()
    openapi = OpenAPIConfig(
        title="nodeloom",
        version=VERSION,
        description="Workflows, runs, live events, batches, exports; an OpenAI-compatible door.",
        path="/api/schema",
        render_plugins=[ExactSwagger(path="/"), ExactJson(path="/openapi.json")],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="API token")
            }
        ),
    )
    return Litestar(
        route_handlers=[*API, *extra_routes],
        lifespan=[engine_lifespan(config, registry)],
        dependencies={
            "engine": Provide(get_engine, sync_to_thread=False),
            "principal": Provide(get_principal, sync_to_thread=False),
        },
        middleware=[RequestLogMiddleware(), AuthMiddleware()],
        guards=[json_bodies_only, strict_json_bodies],
        before_send=[allow_every_method],
        plugins=[ExactStructs()],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi,
        request_max_body_size=config.max_body_bytes,
        logging_config=None,
    )
