"""What controllers share: the caller's identity, paging, ETags."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litestar import Request
from litestar.di import NamedDependency

from engine.errors import NotFound
from server.auth import ANONYMOUS, Principal
from server.problems import ApiError, ErrorItem
from server.state import Engine

T = TypeVar("T")
IF_MATCH_PATTERN = r'^\s*(?:W/)?"?[0-9]{1,9}"?\s*$'  # what the OpenAPI document declares
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def get_principal(request: Request[Any, Any, Any], engine: NamedDependency[Engine]) -> Principal:
    """The `principal` dependency: who is asking (set by the auth middleware). It takes
    ``engine`` only to come after it: Litestar resolves independent dependencies in a task group
    of their own, two tasks on every request."""
    del engine
    principal = request.scope.get("user")
    return principal if isinstance(principal, Principal) else ANONYMOUS


def etag(version: int) -> str:
    return f'"{version}"'


def if_match_version(header: str | None) -> int:
    """The version an ``If-Match`` header names; 428 without one, 400 when it is not a version."""
    if header is None:
        raise ApiError(
            428,
            'saving a workflow needs an If-Match header with the version it replaces, e.g. "3"',
            errors=[ErrorItem("missing_if_match", "If-Match header required", path=None)],
        )
    found = _ETAG.match(header)
    if found is None:
        raise ApiError(
            400,
            f'If-Match must be a workflow version such as "3", got {header!r}',
            errors=[ErrorItem("invalid_if_match", f"not a version: {header!r}")],
        )
    return int(found.group(1))


async def paged(call: Callable[[], Awaitable[T]]) -> T:
    """A list query; a cursor it cannot read is the client's mistake (400), not a 404."""
    try:
        return await call()
    except NotFound as exc:
        if "cursor" not in exc.detail:
            raise
        raise ApiError(
            400, exc.detail, errors=[ErrorItem("invalid_cursor", exc.detail, path=None)]
        ) from None


# Handler parameters filled by the app's dependencies, by name.
EngineDep = NamedDependency[Engine]
PrincipalDep = NamedDependency[Principal]
