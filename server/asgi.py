"""One port for the API and the canvas: `/api/…`, `/v1/…`, `/mcp` and `/hooks/…` go to the
Litestar app, everything else to the canvas (NiceGUI). Both apps' lifespans run, the API's first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]  # loose: each framework types its own

API_PREFIXES = ("/api/", "/v1/", "/mcp/", "/hooks/")


class Lifespan:
    """Drives one app's lifespan protocol from the outside: startup, then shutdown."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.inbox.get, self.outbox.put)
        except Exception as exc:  # noqa: BLE001 - reported as a failed startup
            await self.outbox.put({"type": "lifespan.startup.failed", "message": str(exc)})

    async def startup(self) -> str | None:
        self.task = asyncio.create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        answer = await self.outbox.get()
        return None if answer["type"] == "lifespan.startup.complete" else answer.get("message", "")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.task


class Combined:
    """The ASGI app `nodeloom serve` runs. ``app`` is the canvas's app (NiceGUI finds its
    server through it)."""

    def __init__(self, api: ASGIApp, gui: ASGIApp) -> None:
        self.api = api
        self.app = gui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(API_PREFIXES) or path in ("/api", "/v1", "/mcp"):
            await self.api(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        spans = [Lifespan(self.api, dict(scope)), Lifespan(self.app, dict(scope))]
        await receive()  # lifespan.startup
        started: list[Lifespan] = []
        for span in spans:
            failure = await span.startup()
            if failure is not None:
                for other in reversed(started):
                    await other.shutdown()
                await send({"type": "lifespan.startup.failed", "message": failure})
                return
            started.append(span)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        for span in reversed(started):
            await span.shutdown()
        await send({"type": "lifespan.shutdown.complete"})
