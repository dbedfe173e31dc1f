"""What every store of nodeloom's tables uses: ids, timestamps and keyset pages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import NotFound

__all__ = ["CURSOR_PATTERN", "decode_cursor", "encode_cursor", "keyset_page", "new_id", "now"]

# A page's cursor: the last row's stamp in microseconds since 1970 and its key. Every text of
# this form is a position (the OpenAPI document declares the pattern).
CURSOR_PATTERN = r"^[0-9]{1,16}\.[A-Za-z0-9_-]{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def now() -> datetime:
    return datetime.now(UTC)


def encode_cursor(stamp: datetime, key: str) -> str:
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return f"{(stamp - _EPOCH) // timedelta(microseconds=1)}.{key}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not _CURSOR.match(cursor):
        raise NotFound(f"invalid cursor {cursor!r}")
    micros, key = cursor.split(".", 1)
    return _EPOCH + timedelta(microseconds=int(micros)), key


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
