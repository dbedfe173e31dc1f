"""`/mcp` (SPEC §15): every workflow the caller may see is an MCP tool, over Streamable HTTP.

A tool's name is a slug of the workflow's name and its id's suffix (``greeting-3f2a…``), its
input schema is made from the workflow's input nodes. A call runs the workflow to its end
(``trigger: mcp``; a run like any other, stored and rerunnable) and answers its outputs as
structured content and as JSON text; a failed run is ``isError`` with the run's error. While
the run goes on, a client that asked for progress hears of each node settled.

The MCP server is stateless (no session kept between requests), so any server process sharing
the database answers any request. The bearer tokens and the per-user isolation are the REST
API's: the auth middleware puts the caller's `Principal` in the request's scope.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import mcp_types as types
import msgspec
from litestar import asgi
from litestar.types import Receive, Scope, Send
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError

from engine.documents.document import Workflow
from engine.documents.inputs import input_schemas
from engine.errors import InputsInvalid, NodeloomError, NotFound
from engine.execution.events import NodeCompleted, NodeFailed, NodeSkipped, RunFinished
from engine.records import RunRecord, WorkflowRecord
from engine.runs.launch import RunHandle
from server.auth import ANONYMOUS, Principal, is_loopback
from server.state import Engine

__all__ = ["McpEndpoint", "mcp_route", "tool_name"]

ID_PREFIX = "wf_"
SLUG_CHARS = 40
RUN_ID_META = "io.nodeloom/run_id"
SCHEMAS_KEPT = 1024
_not_slug = re.compile(r"[^a-z0-9]+")
_encoder = msgspec.json.Encoder()


def tool_name(workflow_id: str, name: str) -> str:
    """``<slug of the name>-<the id after wf_>``: readable, unique, and the way back to the id
    (a slug has no hyphen, so the first one ends it)."""
    slug = _not_slug.sub("_", name.lower()).strip("_")[:SLUG_CHARS].strip("_") or "workflow"
    return f"{slug}-{workflow_id.removeprefix(ID_PREFIX)}"


def workflow_id_of(tool: str) -> str | None:
    slug, hyphen, suffix = tool.partition("-")
    return f"{ID_PREFIX}{suffix}" if hyphen and slug and suffix else None


def input_schema(engine: Engine, workflow: Workflow) -> dict[str, Any]:
    """The JSON Schema of a call's arguments: one property per input node, required where the
    input has no default."""
    plan = engine.runs.plan(workflow)
    inputs = sorted(plan.by_role("input"), key=lambda node: node.index)
    return {
        "type": "object",
        "properties": input_schemas(plan),
        "required": [node.params["name"] for node in inputs if "default" not in node.params],
        "additionalProperties": False,
    }


def _principal(ctx: ServerRequestContext[Any, Any]) -> Principal:
    request = ctx.request
    principal = getattr(request, "scope", {}).get("user") if request is not None else None
    return principal if isinstance(principal, Principal) else ANONYMOUS


def _text(value: Any) -> types.TextContent:
    return types.TextContent(text=_encoder.encode(value).decode())


def _error(message: str, run_id: str | None = None) -> types.CallToolResult:
    meta = {RUN_ID_META: run_id} if run_id else None
    return types.CallToolResult(
        content=[types.TextContent(text=message)], is_error=True, _meta=meta
    )


def _settled(event: NodeCompleted | NodeFailed | NodeSkipped) -> str:
    if isinstance(event, NodeCompleted):
        return f"{event.node} {event.status}"
    return f"{event.node} {'failed' if isinstance(event, NodeFailed) else 'skipped'}"


class McpEndpoint:
    """The MCP server over one engine, and the Streamable HTTP session manager serving it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The input schemas of the tools listed or called lately, by name: what the SDK checks a
        # call's `Mcp-Param-*` headers against (without them it lists every tool per call).
        self._schemas: dict[str, dict[str, Any]] = {}
        self.server: Server[Any] = Server(
            "nodeloom",
            version="0.1.0",
            instructions="Each tool runs one nodeloom workflow and answers its outputs.",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            get_tool_input_schema=self._schemas.get,
        )
        security = None
        if is_loopback(engine.config.host):  # open local mode: refuse DNS-rebound pages
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
        # No OpenTelemetry span per message: nodeloom sets up no tracer, and the no-op spans
        # cost a tenth of a call.
        self.server.middleware.clear()
        # A call asking for progress gets an event stream to carry it; the others a plain JSON
        # answer, which the SDK makes with a third less work.
        self.streaming, self.plain = (
            StreamableHTTPSessionManager(
                app=self.server,
                stateless=True,
                json_response=json_response,
                security_settings=security,
                max_request_body_size=engine.config.max_body_bytes,
            )
            for json_response in (False, True)
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[McpEndpoint]:
        async with self.streaming.run(), self.plain.run():
            yield self

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request to `/mcp`: a POST is read first, to see whether it asks for progress
        (a ``progressToken`` in it, which only a request's ``_meta`` holds in practice)."""
        if scope.get("method") != "POST":
            await self.streaming.handle_request(scope, receive, send)  # type: ignore[arg-type]
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False) and size <= self.plain.max_request_body_size
        body = b"".join(chunks)
        replayed = False

        async def read() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": more}

        manager = self.streaming if b"progressToken" in body else self.plain
        await manager.handle_request(scope, read, send)  # type: ignore[arg-type]

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        owner_id = _principal(ctx).owner_id
        tools, cursor = [], params.cursor if params is not None else None
        try:
            page = await self.engine.workflows.list_workflows(
                owner_id=owner_id, limit=100, cursor=cursor
            )
        except NotFound as exc:  # a cursor it cannot read
            raise MCPError(types.INVALID_PARAMS, exc.detail) from None
        for item in page.items:
            try:
                _, workflow = await self.engine.current_workflow(item["id"], owner_id=owner_id)
                schema = input_schema(self.engine, workflow)
            except NodeloomError:  # an invalid workflow is no tool
                continue
            name = tool_name(item["id"], item["name"])
            self._remember(name, schema)
            tools.append(
                types.Tool(
                    name=name,
                    title=item["name"],
                    description=workflow.description or f"Runs the workflow {item['name']!r}.",
                    input_schema=schema,
                )
            )
        return types.ListToolsResult(tools=tools, next_cursor=page.next_cursor)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        owner_id = _principal(ctx).owner_id
        record, workflow = await self._workflow(params.name, owner_id)
        try:
            active = await self.engine.runs.start(
                workflow,
                params.arguments or {},
                workflow_id=record.id,
                workflow_version=record.version,
                owner_id=owner_id,
                caller_waits=True,
                trigger="mcp",
            )
        except InputsInvalid as exc:
            return _error(f"invalid arguments: {exc.detail}")
        except NodeloomError as exc:
            return _error(exc.detail)
        total = len(self.engine.runs.plan(workflow).nodes)
        return self._answer(await self._follow(ctx, active, total))

    async def _workflow(self, tool: str, owner_id: str | None) -> tuple[WorkflowRecord, Workflow]:
        """The workflow a tool name stands for, if the caller may see it."""
        workflow_id = workflow_id_of(tool)
        found = None
        if workflow_id is not None:
            with contextlib.suppress(NotFound):
                found = await self.engine.current_workflow(workflow_id, owner_id=owner_id)
        if found is None or tool_name(found[0].id, found[0].name) != tool:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {tool!r}")
        self._remember(tool, input_schema(self.engine, found[1]))
        return found

    def _remember(self, tool: str, schema: dict[str, Any]) -> None:
        self._schemas.pop(tool, None)
        self._schemas[tool] = schema
        while len(self._schemas) > SCHEMAS_KEPT:
            del self._schemas[next(iter(self._schemas))]

    async def _follow(
        self, ctx: ServerRequestContext[Any, Any], active: RunHandle, total: int
    ) -> RunRecord:
        """The run's record once it ended; meanwhile a progress notification per node settled,
        when the client asked for progress (a token in the call's ``_meta``)."""
        channel = self.engine.live.get(active.id)
        meta: Mapping[str, Any] = ctx.meta or {}
        if channel is None or meta.get("progress_token", meta.get("progressToken")) is None:
            return await active.wait()
        events = channel.subscribe()
        settled = 0
        try:
            async for event in events.live():
                if isinstance(event, RunFinished):
                    break
                if isinstance(event, NodeFailed) and event.will_retry:
                    continue
                if isinstance(event, NodeCompleted | NodeFailed | NodeSkipped) and (
                    "/" not in event.node
                ):
                    settled += 1
                    await ctx.session.report_progress(settled, total, _settled(event))
        finally:
            events.close()
        return await active.wait()

    @staticmethod
    def _answer(record: RunRecord) -> types.CallToolResult:
        meta = {RUN_ID_META: record.id}
        if record.status != "succeeded":
            return _error(f"run {record.id} {record.status}: {record.error}", record.id)
        return types.CallToolResult(
            content=[_text(record.outputs)],
            structured_content=record.outputs,
            _meta=meta,
        )


@asgi("/mcp", copy_scope=True, include_in_schema=False)
async def mcp_route(scope: Scope, receive: Receive, send: Send) -> None:
    """Hands `/mcp` to the MCP server (the app's lifespan starts it next to the engine)."""
    endpoint: McpEndpoint = scope["litestar_app"].state.mcp
    await endpoint.handle(scope, receive, send)
