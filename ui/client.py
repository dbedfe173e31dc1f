"""The canvas's way to the engine: the public REST API over HTTP, like any other client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


class ApiError(Exception):
    """A problem-details answer: ``title``/``detail`` for people, ``errors`` for the canvas."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.errors: list[dict[str, Any]] = problem.get("errors") or []
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(detail)
        self.detail = str(detail)


class Api:
    """Calls `/api` of one server. ``token`` is a bearer token (None in open local mode)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self.http.request(
                method, path, json=body, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise ApiError(0, {"detail": f"the server cannot be reached: {exc}"}) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _problem(response))
        return response

    async def put_bytes(self, path: str, content: bytes) -> Any:
        try:
            response = await self.http.put(
                path, content=content, headers={"Content-Type": "application/octet-stream"}
            )
        except httpx.TransportError as exc:
            raise ApiError(0, {"detail": f"the server cannot be reached: {exc}"}) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _problem(response))
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.call("GET", path, params=params or None)).json()

    async def post(self, path: str, body: Any = None) -> Any:
        return (await self.call("POST", path, body=body if body is not None else {})).json()

    async def stream(self, path: str, body: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """POST ``body`` and read the answer's Server-Sent Events as (event, data) pairs."""
        headers = {"Accept": "text/event-stream"}
        try:
            async with self.http.stream(
                "POST", path, json=body, headers=headers, timeout=None
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise ApiError(response.status_code, _problem(response))
                kind, data = "message", []
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        yield kind, json.loads("\n".join(data))
                        kind, data = "message", []
        except httpx.TransportError as exc:
            raise ApiError(0, {"detail": f"the server cannot be reached: {exc}"}) from None

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """A run's events (Server-Sent Events), past ones first, until `run.finished`."""
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = str(after)
        async with self.http.stream(
            "GET", f"/api/runs/{run_id}/events", headers=headers, timeout=None
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError(response.status_code, {"detail": response.text[:500]})
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    event = json.loads("\n".join(data))
                    data = []
                    yield event
                    if event.get("type") == "run.finished":
                        return


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        problem = response.json()
    except json.JSONDecodeError:
        return {"detail": response.text[:500]}
    return problem if isinstance(problem, dict) else {}
