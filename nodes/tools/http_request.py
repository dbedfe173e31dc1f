"""`http_request`: one HTTP request with httpx, to allow-listed hosts only, size and time bounded.

The allow-list is ``NODELOOM_HTTP_ALLOW_HOSTS`` (comma-separated host names, or ``host:port``),
read at each call; it is empty by default, so every host is refused until the operator lists it.
Redirects are not followed (one could lead off the list). Nothing here logs headers or bodies.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, ClassVar

import httpx

from nodes.tools.base import Tool, ToolError

ALLOW_HOSTS_ENV = "NODELOOM_HTTP_ALLOW_HOSTS"
MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 120.0
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def allowed_hosts() -> frozenset[str]:
    raw = os.environ.get(ALLOW_HOSTS_ENV, "")
    return frozenset(host.strip().lower() for host in raw.split(",") if host.strip())


class HttpRequest(Tool):
    name = "http_request"
    description = (
        "Sends one HTTP request to a host listed in NODELOOM_HTTP_ALLOW_HOSTS and gives "
        "`status`, `headers`, `text` and (for a JSON response) `json`. Responses over 1 MiB "
        "and requests over `timeout_s` fail. Redirects are returned, not followed."
    )
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "method": {
                "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                "default": "GET",
            },
            "url": {"type": "string", "minLength": 1},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "params": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "json": {"description": "A JSON body (sets Content-Type: application/json)."},
            "body": {"type": "string", "description": "A text body."},
            "timeout_s": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_TIMEOUT_S,
                "default": DEFAULT_TIMEOUT_S,
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport  # for tests of error paths only

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        method: str = args.get("method", "GET")
        if "json" in args and "body" in args:
            raise ToolError("give either `json` or `body`, not both")
        url = _checked_url(args["url"])
        headers = dict(args.get("headers", {}))
        if method in _WRITES and not any(k.lower() == "idempotency-key" for k in headers):
            headers["Idempotency-Key"] = idempotency_key
        timeout = float(args.get("timeout_s", DEFAULT_TIMEOUT_S))
        content: dict[str, Any] = {}
        if "json" in args:
            content["json"] = args["json"]
        elif "body" in args:
            content["content"] = args["body"].encode()
        where = f"{method} {url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
        try:
            async with (
                httpx.AsyncClient(
                    transport=self._transport, timeout=timeout, follow_redirects=False
                ) as client,
                client.stream(
                    method, url, headers=headers, params=args.get("params"), **content
                ) as response,
            ):
                body = await _read_limited(response, where)
        except httpx.TimeoutException:
            raise ToolError(f"{where} timed out after {timeout:g} s", retryable=True) from None
        except httpx.HTTPError as exc:
            # The message of some httpx errors holds the full URL (query strings carry secrets).
            raise ToolError(f"{where} failed: {type(exc).__name__}", retryable=True) from None
        return _result(response, body)


def _checked_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise ToolError(f"invalid url: {exc}") from None
    host = url.host.lower()
    if url.scheme not in ("http", "https") or not host:
        raise ToolError("url must be http:// or https:// with a host")
    allowed = allowed_hosts()
    with_port = f"{host}:{url.port}" if url.port is not None else host
    if host not in allowed and with_port not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise ToolError(
            f"host {host!r} is not on the allow-list {ALLOW_HOSTS_ENV} (allowed: {listed})"
        )
    return url


async def _read_limited(response: httpx.Response, where: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise ToolError(f"{where}: response of {declared} bytes exceeds {MAX_RESPONSE_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ToolError(
                f"{where}: response exceeds {MAX_RESPONSE_BYTES} bytes; reading stopped"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _result(response: httpx.Response, body: bytes) -> dict[str, Any]:
    text = body.decode(response.encoding or "utf-8", errors="replace")
    result: dict[str, Any] = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "text": text,
    }
    if "json" in response.headers.get("content-type", "").lower():
        with contextlib.suppress(json.JSONDecodeError):
            result["json"] = json.loads(text)
    return result
