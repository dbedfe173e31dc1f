"""Accounts (SPEC §18): ``POST /api/auth/login`` (a password for a token), ``GET /api/me``, and
the caller's tokens at ``/api/tokens`` (listed without their secrets, created with an optional
expiry and shown once, revoked at once)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from engine.storage.accounts import MAX_PASSWORD, TokenInfo
from server.api.deps import EngineDep, PrincipalDep
from server.auth import is_loopback
from server.problems import ApiError, ErrorItem, documented
from server.signins import Busy

LOGIN_TOKEN_DAYS = 30
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Login(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Name
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD)]


class Session(msgspec.Struct, kw_only=True):
    token: str
    expires_at: datetime | None


class Me(msgspec.Struct, kw_only=True):
    """Who the caller is; in open local mode nobody (`id` and `name` null)."""

    id: str | None
    name: str | None
    open_mode: bool
    token_id: str | None


class NewToken(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class CreatedToken(TokenInfo, kw_only=True):
    """A new token: its text is in `token`, this once."""

    token: str


class TokenPage(msgspec.Struct, kw_only=True):
    items: list[TokenInfo]
    next_cursor: str | None = None


def _refused(detail: str, retry_after: float) -> ApiError:
    return ApiError(
        429,
        detail,
        errors=[ErrorItem("too_many_attempts", detail)],
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def client_address(request: Request[Any, Any, Any]) -> str:
    """Whom failed sign-ins are counted against: the peer; for a peer on this host (the canvas,
    or a reverse proxy here), the last address of its `X-Forwarded-For`, the one it added."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and is_loopback(peer):
        return forwarded.rsplit(",", 1)[-1].strip() or peer
    return peer


class AuthController(Controller):
    tags = ["accounts"]  # noqa: RUF012

    @post(
        "/api/auth/login",
        status_code=200,
        summary="Sign in with a password: a new token that expires",
        security=[{}],
        responses=documented(429),
    )
    async def login(
        self, request: Request[Any, Any, Any], engine: EngineDep, data: JSONBody[Login]
    ) -> Session:
        limits = engine.gate.sign_ins
        address = client_address(request)
        wait = limits.attempt(data.username, address)
        if wait is not None:
            raise _refused("too many failed sign-ins: wait before trying again", wait)
        try:
            async with limits.checking():
                user = await engine.gate.accounts.check_password(data.username, data.password)
        except Busy:
            limits.withdraw(data.username, address)
            raise _refused("too many sign-ins at once: try again in a moment", 1) from None
        if user is None:
            raise ApiError(
                401,
                "wrong user name or password",
                errors=[ErrorItem("invalid_credentials", "wrong user name or password")],
            )
        limits.succeeded(data.username, address)
        token, text = await engine.gate.accounts.issue_token(
            user.id, name="sign-in", expires_in=timedelta(days=LOGIN_TOKEN_DAYS)
        )
        return Session(token=text, expires_at=token.expires_at)

    @get("/api/me", summary="Who the caller is", responses=documented())
    async def me(self, principal: PrincipalDep) -> Me:
        user = principal.user
        return Me(
            id=user.id if user else None,
            name=user.name if user else None,
            open_mode=user is None,
            token_id=principal.token_id,
        )


class TokenController(Controller):
    path = "/api/tokens"
    tags = ["accounts"]  # noqa: RUF012

    @get("/", summary="The caller's tokens (never their secrets)", responses=documented())
    async def list_tokens(self, engine: EngineDep, principal: PrincipalDep) -> TokenPage:
        if principal.user is None:  # open local mode: no users, so no tokens
            return TokenPage(items=[])
        tokens = await engine.gate.accounts.tokens(principal.user.id)
        return TokenPage(items=[token for _, token in tokens])

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="A new token for the caller; its secret is shown this once",
        responses=documented(409),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[NewToken]
    ) -> CreatedToken:
        if principal.user is None:
            raise ApiError(
                409,
                "open local mode has no users to own a token: "
                "create one with `nodeloom users create NAME`",
            )
        expires = timedelta(days=data.expires_in_days) if data.expires_in_days else None
        info, text = await engine.gate.accounts.issue_token(
            principal.user.id, name=data.name, expires_in=expires
        )
        return CreatedToken(**msgspec.structs.asdict(info), token=text)

    @delete(
        "/{token_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke one of the caller's tokens: refused from its next request",
        responses=documented(404),
    )
    async def revoke(
        self, engine: EngineDep, principal: PrincipalDep, token_id: FromPath[str]
    ) -> None:
        if principal.user is None:
            raise ApiError(404, f"no token {token_id!r}")
        await engine.gate.accounts.revoke(token_id, principal.user.id)
