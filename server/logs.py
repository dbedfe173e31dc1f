"""structlog set-up (SPEC §11): JSON lines when stderr is not a terminal, a request id bound to
every line logged while handling a request (and to the runs it starts)."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any, TextIO

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = structlog.get_logger("nodeloom.http")
# Values JSON does not know (an exception, a path) are logged as their repr.
_line_encoder = msgspec.json.Encoder(enc_hook=repr)


def _json_line(event: dict[str, Any], **_: Any) -> str:
    return _line_encoder.encode(event).decode()


def configure_logging(
    *, json: bool | None = None, level: int = logging.INFO, file: TextIO | None = None
) -> None:
    """JSON lines unless the ``file`` (stderr by default) is a terminal, or ``json`` says."""
    file = file or sys.stderr
    as_json = not file.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file),
        cache_logger_on_first_use=True,
    )


class RequestLogMiddleware(ASGIMiddleware):
    """Binds ``request_id`` (the client's ``X-Request-ID`` when sane, else a new one) for the
    request, echoes it in the response, and logs one line per request."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = _given_id(scope) or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await next_app(scope, receive, send_with_id)
            except HTTPException as exc:  # answered by Litestar's handler, further out
                status = exc.status_code
                raise
            finally:
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )


def _given_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None
