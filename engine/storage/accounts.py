"""Users, their passwords and their API tokens (SPEC §18). A token's text is shown once; only its
SHA-256 is stored. A password is kept as its argon2id hash (argon2-cffi), checked in a thread."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import datetime, timedelta

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import Conflict, NodeloomError, NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import ApiTokenRow, UserRow

__all__ = [
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "TOKEN_PREFIX",
    "Accounts",
    "NameInvalid",
    "PasswordInvalid",
    "Signed",
    "TokenInfo",
    "User",
    "token_hash",
]

TOKEN_PREFIX = "nl_"  # noqa: S105 - a prefix, not a secret
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOUCH_EVERY = timedelta(seconds=60)  # `last_used_at` is kept to the minute: one write a minute
# argon2id with RFC 9106's low-memory costs (64 MiB, 3 passes) on one lane: a check keeps to
# one core, so that sign-ins, however many, leave the other cores to every other request.
_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)
# Checked when the user does not exist or has no password, so the answer takes as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class NameInvalid(NodeloomError, ValueError):
    """A user name that is empty or too long."""


class PasswordInvalid(NodeloomError, ValueError):
    """A password too short or too long to be set."""


class User(msgspec.Struct, frozen=True):
    id: str
    name: str


class Signed(msgspec.Struct, frozen=True):
    """Who a valid token belongs to, and which token it is."""

    user: User
    token_id: str


class TokenInfo(msgspec.Struct, kw_only=True):
    """A token as it may be listed: never its text."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise PasswordInvalid(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters, got {len(password)}"
        )


def _verify(encoded: str | None, password: str) -> bool:
    try:
        return _hasher.verify(encoded or _DUMMY_HASH, password) and encoded is not None
    except (VerificationError, InvalidHashError):
        return False


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
    )


class Accounts:
    """Queries over the users and api_tokens tables."""

    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create_user(self, name: str, password: str | None = None) -> User:
        name = name.strip()
        if not name or len(name) > 128:
            raise NameInvalid(f"a user name is 1 to 128 characters, got {name!r}")
        encoded = None
        if password is not None:
            _check_password(password)
            encoded = await asyncio.to_thread(_hasher.hash, password)
        row = UserRow(id=new_id("user"), name=name, created_at=now(), password_hash=encoded)
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"a user named {name!r} already exists") from None
        return User(row.id, row.name)

    async def find_user(self, name: str) -> User:
        async with self.sessions() as session:
            row = await self._user_row(session, name)
        return User(row.id, row.name)

    async def set_password(self, name: str, password: str) -> User:
        _check_password(password)
        encoded = await asyncio.to_thread(_hasher.hash, password)
        async with self.sessions.begin() as session:
            row = await self._user_row(session, name)
            row.password_hash = encoded
        return User(row.id, row.name)

    async def check_password(self, name: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise, as slowly whether or not the
        user exists."""
        async with self.sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.name == name.strip()))
        encoded = row.password_hash if row is not None else None
        if not await asyncio.to_thread(_verify, encoded, password) or row is None:
            return None
        if encoded is not None and _hasher.check_needs_rehash(encoded):
            await self.set_password(row.name, password)
        return User(row.id, row.name)

    async def create_token(
        self, user_name: str, *, name: str = "", expires_in: timedelta | None = None
    ) -> tuple[User, str]:
        """A new token for the user; the text returned is the only copy there will be."""
        async with self.sessions.begin() as session:
            row = await self._user_row(session, user_name)
        _, token = await self.issue_token(row.id, name=name, expires_in=expires_in)
        return User(row.id, row.name), token

    async def issue_token(
        self, user_id: str, *, name: str = "", expires_in: timedelta | None = None
    ) -> tuple[TokenInfo, str]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = now()
        row = ApiTokenRow(
            id=new_id("tok"),
            user_id=user_id,
            token_hash=token_hash(token),
            created_at=created,
            name=name,
            expires_at=created + expires_in if expires_in is not None else None,
            last_used_at=None,
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return _info(row), token

    async def tokens(self, user_id: str | None = None) -> list[tuple[str, TokenInfo]]:
        """(user name, token) pairs, newest first: one user's, or everyone's."""
        query = select(UserRow.name, ApiTokenRow).join(UserRow, ApiTokenRow.user_id == UserRow.id)
        if user_id is not None:
            query = query.where(ApiTokenRow.user_id == user_id)
        query = query.order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id.desc())
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [(user_name, _info(token)) for user_name, token in rows]

    async def revoke(self, token_id: str, user_id: str | None = None) -> None:
        """Deletes the token (one of the user's, when given): refused from its next request."""
        query = delete(ApiTokenRow).where(ApiTokenRow.id == token_id)
        if user_id is not None:
            query = query.where(ApiTokenRow.user_id == user_id)
        async with self.sessions.begin() as session:
            deleted = (await session.execute(query)).rowcount  # type: ignore[attr-defined]
        if not deleted:
            raise NotFound(f"no token {token_id!r}")

    async def signed(self, token: str) -> Signed | None:
        """Who a token belongs to, read from the database on every call (a revoked or expired
        token is refused at once); its `last_used_at` is brought up to date once a minute."""
        moment = now()
        async with self.sessions() as session:
            found = (
                await session.execute(
                    select(UserRow.id, UserRow.name, ApiTokenRow.id, ApiTokenRow.last_used_at)
                    .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
                    .where(
                        ApiTokenRow.token_hash == token_hash(token),
                        or_(ApiTokenRow.expires_at.is_(None), ApiTokenRow.expires_at > moment),
                    )
                )
            ).first()
        if found is None:
            return None
        user_id, user_name, token_id, last_used = found
        if last_used is None or moment - last_used >= TOUCH_EVERY:
            async with self.sessions.begin() as session:
                await session.execute(
                    update(ApiTokenRow)
                    .where(ApiTokenRow.id == token_id)
                    .values(last_used_at=moment)
                )
        return Signed(User(user_id, user_name), token_id)

    async def user_for_token(self, token: str) -> User | None:
        signed = await self.signed(token)
        return signed.user if signed else None

    async def has_users(self) -> bool:
        async with self.sessions() as session:
            return bool(await session.scalar(select(func.count()).select_from(UserRow)))

    @staticmethod
    async def _user_row(session: AsyncSession, name: str) -> UserRow:
        row = await session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"no user named {name!r}: create one with `nodeloom users create NAME`")
        return row
