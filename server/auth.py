"""Bearer tokens (SPEC §6): open local mode on a loopback address while no user exists, else every
API endpoint but the health check (and the API's own documentation) needs a valid token."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from engine.storage.accounts import Accounts, User
from server.problems import ApiError

PUBLIC_PATHS = ("/api/health", "/api/schema")
PROTECTED_PREFIXES = ("/api/", "/v1/", "/mcp")
OPEN_RECHECK_S = 1.0  # how soon a user created meanwhile (by the CLI) ends open local mode
TOKEN_CACHE_S = 30.0


class Principal(msgspec.Struct, frozen=True):
    """Who is asking: a user, or nobody in open local mode (who then sees every record)."""

    user: User | None = None

    @property
    def owner_id(self) -> str | None:
        return self.user.id if self.user else None


ANONYMOUS = Principal()


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Gate:
    """Decides who a request is from; remembers answers briefly to spare the database."""

    def __init__(self, accounts: Accounts, *, loopback: bool) -> None:
        self.accounts = accounts
        self._locked = not loopback  # once tokens are needed, they stay needed
        self._open_checked = -OPEN_RECHECK_S
        self._tokens: dict[str, tuple[User, float]] = {}

    async def open_mode(self) -> bool:
        if self._locked:
            return False
        moment = time.monotonic()
        if moment - self._open_checked < OPEN_RECHECK_S:
            return True
        if await self.accounts.has_users():
            self._locked = True
            return False
        self._open_checked = moment
        return True

    async def principal(self, authorization: str | None) -> Principal:
        """In open local mode everyone is anonymous (OpenAI clients send some key anyway)."""
        if await self.open_mode():
            return ANONYMOUS
        if authorization is None:
            raise _unauthorized("this endpoint needs a bearer token (Authorization: Bearer …)")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("the Authorization header must be `Bearer <token>`")
        user = await self._user(token)
        if user is None:
            raise _unauthorized("the bearer token is not valid")
        return Principal(user)

    async def _user(self, token: str) -> User | None:
        moment = time.monotonic()
        cached = self._tokens.get(token)
        if cached is not None and moment - cached[1] < TOKEN_CACHE_S:
            return cached[0]
        user = await self.accounts.user_for_token(token)
        if user is not None:
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[token] = (user, moment)
        return user


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="nodeloom"'})


class AuthMiddleware(ASGIMiddleware):
    """Puts the request's `Principal` in ``scope["user"]``, or answers 401."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path: str = scope["path"]
        if path.startswith(PUBLIC_PATHS) or not path.startswith(PROTECTED_PREFIXES):
            scope["user"] = ANONYMOUS
        else:
            gate: Gate = scope["litestar_app"].state.engine.gate
            header = _header(scope, b"authorization")
            scope["user"] = await gate.principal(header)
        await next_app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Any = scope["headers"]
    for key, value in headers:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
