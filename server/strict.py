"""JSON bodies are held to their types exactly as the OpenAPI document states them. Litestar
converts a body leniently (``0`` for ``false``, ``"5"`` for ``5``); this guard checks it strictly
first, so a body the document calls invalid is refused (400) and never half-understood."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from engine.documents.issues import pointer
from server.problems import ApiError, ErrorItem

__all__ = ["strict_json_bodies"]

_AT = re.compile(r" - at `\$(.*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[(?:'|\")(.*?)(?:'|\")\]")


def _integral(value: Any) -> Any:
    """JSON Schema's `integer` takes ``34.0``; msgspec's strict mode takes only ``34``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _where(message: str) -> tuple[str, str]:
    """msgspec's ``… - at `$.nodes[0].id``` as the message and the pointer ``/nodes/0/id``."""
    found = _AT.search(message)
    parts = []
    text = message
    if found is not None:
        parts = [next(group for group in part if group) for part in _PART.findall(found.group(1))]
        text = message[: found.start()]
    unknown = _UNKNOWN.match(text)
    if unknown:
        parts.append(unknown.group(1))
    return text, pointer(*parts) if parts else ""


async def strict_json_bodies(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A guard (a coroutine, so that Litestar does not run it in a thread)."""
    field = handler.parsed_data_field
    if field is None or not isinstance(connection, Request):
        return
    media = connection.headers.get("content-type", "").partition(";")[0].strip().lower()
    is_json = media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
    if not is_json:
        return  # not decoded as JSON (or refused by `json_bodies_only`)
    try:
        body = await connection.json()
    except Exception:  # noqa: BLE001 - Litestar answers a malformed body itself
        return
    if body is None and field.has_default:
        return
    try:
        msgspec.convert(_integral(body), field.annotation, strict=True, str_keys=True)
    except msgspec.ValidationError as exc:
        message, path = _where(str(exc))
        detail = f"{message} at {path}" if path else message
        raise ApiError(
            400,
            f"Validation failed for {connection.method} {connection.url.path}",
            errors=[ErrorItem("invalid_request", detail, path=path)],
        ) from None
