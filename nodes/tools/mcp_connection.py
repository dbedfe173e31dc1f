"""One MCP server's connection, held open between calls.

The SDK's client enters anyio cancel scopes that must be left by the task that entered them, so
each connection is opened, held and closed by a task of its own (`_hold`); calls use the
session from any task, concurrently. A stdio server is started on first use, and again when it
has died: a call that finds the connection closed opens a new one and is sent once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx2
import mcp_types as types
import structlog
from mcp import Client, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from nodes.tools.base import ToolError
from nodes.tools.mcp_config import HttpServer, ServerConfig

__all__ = ["IDEMPOTENCY_KEY", "Connection", "McpUnavailable"]

log = structlog.get_logger("nodeloom.mcp")

IDEMPOTENCY_KEY = "io.nodeloom/idempotency-key"  # in a tools/call request's `_meta`
CLIENT_INFO = types.Implementation(name="nodeloom", version="0.1.0")
CLOSE_TIMEOUT_S = 10.0  # the SDK's stdio shutdown: stdin closed, 2 s, SIGTERM, 2 s, SIGKILL


class McpUnavailable(ToolError):
    """The server cannot be reached (not started, not answering, a header's variable unset)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=True)


@dataclass
class _Held:
    """A connection being opened or open: the task holding it and what it gave."""

    loop: asyncio.AbstractEventLoop
    ready: asyncio.Future[Client] = field(init=False)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.ready = self.loop.create_future()


class Connection:
    def __init__(self, config: ServerConfig, environ: Mapping[str, str]) -> None:
        self.config = config
        self.name = config.name
        self._environ = environ
        self._held: _Held | None = None

    async def list_tools(self) -> list[types.Tool]:
        """Every tool of the server (all pages), opening the connection when needed."""
        _, client = await self._client()
        found: list[types.Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                while True:
                    page = await client.list_tools(cursor=cursor)
                    found.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        return found
        except TimeoutError:
            raise self._silent("listing its tools") from None

    async def call(self, tool: str, args: dict[str, Any], idempotency_key: str) -> Any:
        """`tools/call` with ``args``; the `CallToolResult`. A closed connection is opened
        again and the call sent once more (with the same idempotency key)."""
        meta: Any = {IDEMPOTENCY_KEY: idempotency_key}
        for attempt in (1, 2):
            held, client = await self._client()
            try:
                return await client.call_tool(
                    tool, args, read_timeout_seconds=self.config.timeout_s, meta=meta
                )
            except MCPError as exc:
                if attempt == 1 and _lost(exc):
                    log.warning("MCP server connection lost; reconnecting", server=self.name)
                    await self._drop(held)  # not one another call has opened since
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Stop the server (stdio) or end the session (HTTP). A later call opens it again."""
        await self._drop()

    # -- holding the connection ------------------------------------------------------------------

    async def _client(self) -> tuple[_Held, Client]:
        loop = asyncio.get_running_loop()
        held = self._held
        if held is None or held.loop is not loop or (held.task is not None and held.task.done()):
            held = self._held = _Held(loop)
            held.task = loop.create_task(self._hold(held), name=f"mcp server {self.name}")
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return held, await asyncio.shield(held.ready)
        except TimeoutError:
            await self._drop(held)
            raise self._silent("starting") from None
        except McpUnavailable as exc:  # one exception object per caller
            raise McpUnavailable(exc.detail) from None

    async def _hold(self, held: _Held) -> None:
        try:
            async with self._open() as client:
                held.ready.set_result(client)
                await held.stop.wait()
        except Exception as exc:  # noqa: BLE001 - whatever stops the server goes to its callers
            if held.ready.done():
                log.warning("MCP server connection ended", server=self.name, error=_reason(exc))
            else:
                held.ready.set_exception(_unavailable(self.name, exc))
        except asyncio.CancelledError:
            if not held.ready.done():
                held.ready.set_exception(McpUnavailable(f"MCP server {self.name!r} was closed"))
            raise
        finally:
            if self._held is held:
                self._held = None

    async def _drop(self, held: _Held | None = None) -> None:
        """Stop ``held`` (default: the current connection)."""
        held = held or self._held
        if self._held is held:
            self._held = None
        if held is None or held.task is None or held.loop is not asyncio.get_running_loop():
            return
        held.stop.set()
        if not held.ready.done():
            held.task.cancel()
        done, _ = await asyncio.wait([held.task], timeout=CLOSE_TIMEOUT_S)
        if not done:
            held.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await held.task
        if held.ready.done() and not held.ready.cancelled():
            held.ready.exception()  # retrieved, so a failed start logs no "never retrieved"

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Client]:
        transport = self.config.transport
        if isinstance(transport, HttpServer):
            headers = {}
            for header, variable in transport.headers_env.items():
                value = self._environ.get(variable)
                if value is None:
                    raise McpUnavailable(
                        f"MCP server {self.name!r}: the environment variable {variable} "
                        f"(header {header}) is not set"
                    )
                headers[header] = value
            timeout = httpx2.Timeout(self.config.timeout_s, read=max(300.0, self.config.timeout_s))
            async with (
                httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
                Client(
                    streamable_http_client(transport.url, http_client=http),
                    cache=None,
                    client_info=CLIENT_INFO,
                ) as client,
            ):
                yield client
            return
        params = StdioServerParameters(
            command=transport.command, args=list(transport.args), env=dict(transport.env)
        )
        async with Client(
            stdio_client(params, errlog=errlog()), cache=None, client_info=CLIENT_INFO
        ) as client:
            yield client

    def _silent(self, doing: str) -> McpUnavailable:
        return McpUnavailable(
            f"MCP server {self.name!r} did not answer within {self.config.timeout_s:g} s "
            f"({doing})"
        )


def _lost(exc: MCPError) -> bool:
    """Whether the error says the connection is gone (and a new one may work)."""
    if exc.code == types.CONNECTION_CLOSED:
        return True
    # A Streamable HTTP server that restarted no longer knows the session.
    return exc.code == types.INVALID_REQUEST and exc.message == "Session terminated"


def _unavailable(name: str, exc: BaseException) -> McpUnavailable:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, McpUnavailable):
        return exc
    return McpUnavailable(f"MCP server {name!r} cannot be reached: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError | PermissionError):
        return f"cannot start {exc.filename or 'its command'}: {exc.strerror}"
    if isinstance(exc, MCPError):
        return exc.message
    return str(exc) or type(exc).__name__


def errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours, when it is a real file."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr
