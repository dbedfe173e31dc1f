"""Bearer tokens (SPEC §6, §18): open local mode on a loopback address while no user exists, else
every API endpoint but the health check, password sign-in (and the API's own documentation) needs
a valid token. A token is looked up in the database on every request, so one revoked or expired is
refused on its next request by every server sharing the database."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from engine.storage.accounts import Accounts, Signed, User
from server.problems import ApiError
from server.signins import SignInLimits

PUBLIC_PATHS = ("/api/health", "/api/schema", "/api/auth/login")
PROTECTED_PREFIXES = ("/api/", "/v1/", "/mcp")
OPEN_RECHECK_S = 1.0  # how soon a user created meanwhile (by the CLI) ends open local mode


class Principal(msgspec.Struct, frozen=True):
    """Who is asking: a user, or nobody in open local mode (who then sees every record)."""

    user: User | None = None
    token_id: str | None = None  # the token the request came with

    @property
    def owner_id(self) -> str | None:
        return self.user.id if self.user else None


ANONYMOUS = Principal()


def needs_token(path: str) -> bool:
    """Whether a request to ``path`` needs a token (outside open local mode)."""
    return path.startswith(PROTECTED_PREFIXES) and not path.startswith(PUBLIC_PATHS)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Gate:
    """Decides who a request is from."""

    def __init__(self, accounts: Accounts, *, loopback: bool) -> None:
        self.accounts = accounts
        self._locked = not loopback  # once tokens are needed, they stay needed
        self._open_checked = -OPEN_RECHECK_S
        self.sign_ins = SignInLimits()

    @property
    def known_open(self) -> bool:
        """Open local mode as last found (`open_mode` finds it again, at most once a second)."""
        return not self._locked

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
        signed: Signed | None = await self.accounts.signed(token)
        if signed is None:
            raise _unauthorized("the bearer token is not valid (unknown, expired or revoked)")
        return Principal(signed.user, signed.token_id)


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="nodeloom"'})


class AuthMiddleware(ASGIMiddleware):
    """Puts the request's `Principal` in ``scope["user"]``, or answers 401."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path: str = scope["path"]
        if not needs_token(path):
            if path.startswith("/api/schema"):  # its security depends on the mode
                await scope["litestar_app"].state.engine.gate.open_mode()
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
