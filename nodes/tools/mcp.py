"""The tools of the operator's MCP servers (SPEC §15) as tools of a `ToolRegistry`:
``mcp.<server>.<tool>``, with the server's description and input schema.

`McpServers` reads ``mcp.toml`` (`nodes.tools.mcp_config`), holds one `Connection` per server
(`nodes.tools.mcp_connection`) and registers each server's tools (`start`); `close` stops
them. An `McpTool` sends ``tools/call`` with the run's idempotency key in the request's
``_meta``; the answer is the structured content, else the text. The answer is data: nothing
renders it as a template.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jsonschema
import mcp_types as types
import pydantic
import structlog
from mcp import MCPError

from nodes.tools.base import Tool, ToolError
from nodes.tools.mcp_config import ServerConfig, config_path, load_config
from nodes.tools.mcp_connection import Connection, McpUnavailable
from nodes.tools.registry import MCP_NAME_PATTERN, ToolRegistry

__all__ = ["McpServers", "McpTool", "result_value"]

log = structlog.get_logger("nodeloom.mcp")


class McpTool(Tool):
    """A tool of an MCP server. `McpServers` makes one subclass per tool (its name, description
    and schema are class attributes, as for every `Tool`)."""

    server: ClassVar[str]
    remote_name: ClassVar[str]  # the tool's name on its server

    def __init__(self, servers: McpServers, connection: Connection) -> None:
        self.servers = servers
        self.connection = connection

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        config = self.connection.config
        try:
            result = await self.connection.call(self.remote_name, args, idempotency_key)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise ToolError(
                    f"MCP tool {self.name!r} did not answer within {config.timeout_s:g} s",
                    retryable=True,
                ) from None
            raise ToolError(f"MCP tool {self.name!r}: the server refused: {exc.message}") from None
        except (RuntimeError, pydantic.ValidationError) as exc:  # a malformed answer
            raise ToolError(f"MCP tool {self.name!r} gave an invalid answer: {exc}") from None
        return result_value(result, self.name, config.max_result_bytes)


def result_value(result: types.CallToolResult, name: str, max_bytes: int) -> Any:
    """The structured content when there is some, else the text of the content blocks (one a
    line; a block that is not text described as JSON). ``isError`` is a `ToolError`."""
    if result.is_error:
        detail = _text(result.content) or "the tool reported an error"
        raise ToolError(f"MCP tool {name!r} failed: {detail}")
    value = result.structured_content
    if value is None:
        value = _text(result.content)
    size = len(value.encode() if isinstance(value, str) else json.dumps(value).encode())
    if size > max_bytes:
        raise ToolError(
            f"MCP tool {name!r} answered {size} bytes, more than its server's "
            f"max_result_bytes ({max_bytes})"
        )
    return value


def _text(content: Sequence[types.ContentBlock]) -> str:
    lines = []
    for block in content:
        if isinstance(block, types.TextContent):
            lines.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(
            block.resource, types.TextResourceContents
        ):
            lines.append(block.resource.text)
        else:
            lines.append(json.dumps(_described(block), ensure_ascii=False))
    return "\n".join(lines)


def _described(block: types.ContentBlock) -> dict[str, Any]:
    if isinstance(block, types.ImageContent | types.AudioContent):
        return {"type": block.type, "mimeType": block.mime_type}
    if isinstance(block, types.ResourceLink):
        return {"type": block.type, "uri": str(block.uri), "name": block.name}
    if isinstance(block, types.EmbeddedResource):
        described = {"type": block.type, "uri": str(block.resource.uri)}
        if block.resource.mime_type:
            described["mimeType"] = block.resource.mime_type
        return described
    return {"type": block.type}  # pragma: no cover - TextContent is written out


class McpServers:
    """The servers of ``mcp.toml`` and their connections; one per process (the app's
    lifespan, a CLI command)."""

    def __init__(
        self, configs: Sequence[ServerConfig], environ: Mapping[str, str] | None = None
    ) -> None:
        live = os.environ if environ is None else environ  # read when a server is connected
        self.connections = {config.name: Connection(config, live) for config in configs}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> McpServers | None:
        """The servers of ``$NODELOOM_MCP_CONFIG`` (default ``./mcp.toml``); None without the
        file. A malformed file is a `SettingInvalid` naming the server and the key."""
        configs = load_config(config_path(environ))
        return None if configs is None else cls(configs, environ)

    @property
    def names(self) -> list[str]:
        return sorted(self.connections)

    async def tools(self) -> dict[str, list[McpTool] | str]:
        """Each server's tools, or why it cannot be reached. Tools whose input schema is not
        JSON Schema (or whose name nodeloom cannot hold) are left out with a warning."""
        names = self.names
        found = await asyncio.gather(*(self._tools_of(self.connections[n]) for n in names))
        return dict(zip(names, found, strict=True))

    async def start(self, tools: ToolRegistry) -> dict[str, str]:
        """Connect to every server (starting the stdio ones), list its tools and register them
        in ``tools`` as ``mcp.<server>.<tool>`` (replacing those registered before). Gives
        ``{server: why it could not be reached}``; those are logged, not raised."""
        failed: dict[str, str] = {}
        for name, found in (await self.tools()).items():
            if isinstance(found, str):
                log.warning("MCP server unreachable", server=name, error=found)
                failed[name] = found
                continue
            tools.unregister_source(f"mcp:{name}")
            for tool in found:
                tools.register(tool, source=f"mcp:{name}")
        return failed

    async def close(self) -> None:
        """Stop every server; a later call would start it again."""
        await asyncio.gather(*(connection.close() for connection in self.connections.values()))

    async def _tools_of(self, connection: Connection) -> list[McpTool] | str:
        try:
            listed = await connection.list_tools()
        except McpUnavailable as exc:
            return exc.detail
        except (MCPError, pydantic.ValidationError) as exc:
            await connection.close()
            return f"MCP server {connection.name!r} could not list its tools: {exc}"
        made = []
        for remote in listed:
            name = f"mcp.{connection.name}.{remote.name}"
            if not MCP_NAME_PATTERN.match(name):
                log.warning("MCP tool skipped: its name", server=connection.name, tool=remote.name)
                continue
            try:
                jsonschema.Draft202012Validator.check_schema(remote.input_schema)
            except jsonschema.SchemaError as exc:
                log.warning(
                    "MCP tool skipped: its input schema is not JSON Schema",
                    server=connection.name,
                    tool=remote.name,
                    error=exc.message,
                )
                continue
            made.append(self._tool(connection, remote, name))
        return made

    def _tool(self, connection: Connection, remote: types.Tool, name: str) -> McpTool:
        namespace = {
            "__module__": __name__,
            "name": name,
            "description": (remote.description or remote.title or "").strip(),
            "args_schema": remote.input_schema,
            "server": connection.name,
            "remote_name": remote.name,
        }
        tool_class: type[McpTool] = type("McpTool", (McpTool,), namespace)
        return tool_class(self, connection)
