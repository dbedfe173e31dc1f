"""Users and their API tokens. A token's text is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

import msgspec
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import Conflict, NodeloomError, NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import ApiTokenRow, UserRow

__all__ = ["TOKEN_PREFIX", "Accounts", "NameInvalid", "User", "token_hash"]

TOKEN_PREFIX = "nl_"  # noqa: S105 - a prefix, not a secret


class NameInvalid(NodeloomError, ValueError):
    """A user name that is empty or too long."""


class User(msgspec.Struct, frozen=True):
    id: str
    name: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Queries over the users and api_tokens tables."""

    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create_user(self, name: str) -> User:
        name = name.strip()
        if not name or len(name) > 128:
            raise NameInvalid(f"a user name is 1 to 128 characters, got {name!r}")
        row = UserRow(id=new_id("user"), name=name, created_at=now())
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"a user named {name!r} already exists") from None
        return User(row.id, row.name)

    async def create_token(self, user_name: str) -> tuple[User, str]:
        """A new token for the user; the text returned is the only copy there will be."""
        async with self.sessions.begin() as session:
            row = await session.scalar(select(UserRow).where(UserRow.name == user_name))
            if row is None:
                raise NotFound(
                    f"no user named {user_name!r}: create one with `nodeloom users create NAME`"
                )
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            session.add(
                ApiTokenRow(
                    id=new_id("tok"), user_id=row.id, token_hash=token_hash(token), created_at=now()
                )
            )
        return User(row.id, row.name), token

    async def user_for_token(self, token: str) -> User | None:
        async with self.sessions() as session:
            found = (
                await session.execute(
                    select(UserRow.id, UserRow.name)
                    .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
                    .where(ApiTokenRow.token_hash == token_hash(token))
                )
            ).first()
        return User(found.id, found.name) if found else None

    async def has_users(self) -> bool:
        async with self.sessions() as session:
            return bool(await session.scalar(select(func.count()).select_from(UserRow)))
