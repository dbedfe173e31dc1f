"""What every store of nodeloom's tables uses: ids, timestamps and keyset pages."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import NotFound

__all__ = ["decode_cursor", "encode_cursor", "keyset_page", "new_id", "now"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def now() -> datetime:
    return datetime.now(UTC)


def encode_cursor(stamp: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{key}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, key = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), key
    except ValueError:
        raise NotFound(f"invalid cursor {cursor!r}") from None


async def keyset_page(
    sessions: async_sessionmaker[AsyncSession],
    query: Select[Any],
    stamp: Any,
    key: Any,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """A page of ``query``'s rows, newest first by (``stamp``, ``key``) and after ``cursor``,
    with the cursor of the next page (None on the last)."""
    query = query.order_by(stamp.desc(), key.desc())
    if cursor:
        at, last = decode_cursor(cursor)
        query = query.where(or_(stamp < at, (stamp == at) & (key < last)))
    async with sessions() as session:
        rows = list(await session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], stamp.key), getattr(rows[-1], key.key))
