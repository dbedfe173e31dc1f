"""Conversations as stored (SPEC §13): a target, a title, and a tree of messages.

Each message has a parent (none for a first message); the path from a message up to its root is
the history it was written after, so an edited question is a sibling of the one it replaces and
a regenerated answer a sibling of the earlier answer. A history is read with one recursive
query, however long the conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Integer, Row, Select, delete, literal, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.records import Page
from engine.storage.database import Database
from engine.storage.keys import keyset_page, new_id, now
from engine.storage.tables import ConversationRow, MessageRow

__all__ = [
    "TITLE_CHARS",
    "Conversation",
    "ConversationStore",
    "Message",
    "Said",
    "title_of",
]

TITLE_CHARS = 60  # a title taken from the first question is cut near this length
_messages = MessageRow.__table__
_COLUMNS = (
    _messages.c.id,
    _messages.c.role,
    _messages.c.content,
    _messages.c.parent_id,
    _messages.c.run_id,
    _messages.c.usage,
    _messages.c.created_at,
)


class Conversation(msgspec.Struct, kw_only=True):
    id: str
    target: str
    title: str | None
    created_at: datetime
    updated_at: datetime


class Said(msgspec.Struct, frozen=True):
    """A message of a history: what a turn sends the model."""

    id: str
    role: str
    content: str


class Message(msgspec.Struct, kw_only=True):
    id: str
    role: str
    content: str
    parent_id: str | None
    run_id: str | None
    usage: dict[str, Any] | None
    created_at: datetime


def title_of(question: str) -> str:
    """A conversation's title from its first question: the start of its first line, cut at a
    word near `TITLE_CHARS`."""
    line = next((line.strip() for line in question.splitlines() if line.strip()), "")
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0] or line[:TITLE_CHARS]
    return cut.rstrip(" ,.;:") + " …"


class ConversationStore:
    """The `conversations` and `messages` tables; each method is its own transaction."""

    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create(
        self, target: str, *, title: str | None = None, owner_id: str | None = None
    ) -> Conversation:
        stamp = now()
        row = ConversationRow(
            id=new_id("conv"),
            owner_id=owner_id,
            target=target,
            title=title,
            message_count=0,
            created_at=stamp,
            updated_at=stamp,
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return _conversation(row)

    async def get(self, conversation_id: str, *, owner_id: str | None = None) -> Conversation:
        async with self.sessions() as session:
            row = await session.get(ConversationRow, conversation_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"conversation {conversation_id} not found")
        return _conversation(row)

    async def listing(
        self, *, owner_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """The conversations, the most recently active first."""
        query = select(ConversationRow)
        if owner_id is not None:
            query = query.where(ConversationRow.owner_id == owner_id)
        rows, next_cursor = await keyset_page(
            self.sessions,
            query,
            ConversationRow.updated_at,
            ConversationRow.id,
            limit=limit,
            cursor=cursor,
        )
        return Page(items=[_conversation(row) for row in rows], next_cursor=next_cursor)

    async def delete(self, conversation_id: str, *, owner_id: str | None = None) -> None:
        """The conversation and its messages (the runs that answered stay)."""
        async with self.sessions.begin() as session:
            row = await session.get(ConversationRow, conversation_id)
            if row is None or (owner_id is not None and row.owner_id != owner_id):
                raise NotFound(f"conversation {conversation_id} not found")
            await session.execute(
                delete(MessageRow).where(MessageRow.conversation_id == conversation_id)
            )
            await session.delete(row)

    async def messages(self, conversation_id: str) -> list[Message]:
        """Every message of the conversation, in the order they were stored."""
        query = (
            select(*_COLUMNS)
            .where(_messages.c.conversation_id == conversation_id)
            .order_by(_messages.c.seq)
        )
        return await self._read(query)

    async def message(self, conversation_id: str, message_id: str) -> Message | None:
        """One message of the conversation; None if it has no such message."""
        query = select(*_COLUMNS).where(
            _messages.c.id == message_id, _messages.c.conversation_id == conversation_id
        )
        found = await self._read(query)
        return found[0] if found else None

    async def history(self, conversation_id: str, message_id: str | None) -> list[Said]:
        """What was said down to ``message_id`` (root first, the message last); down to the
        message stored last when ``message_id`` is None. Empty when the conversation has no
        such message (or none at all). One query, however long the path."""
        anchor_id: Any = message_id
        if message_id is None:
            anchor_id = (
                select(_messages.c.id)
                .where(_messages.c.conversation_id == conversation_id)
                .order_by(_messages.c.seq.desc())
                .limit(1)
                .scalar_subquery()
            )
        said = (_messages.c.id, _messages.c.parent_id, _messages.c.role, _messages.c.content)
        steps = (
            select(*said, literal(0, Integer).label("depth"))
            .where(_messages.c.id == anchor_id, _messages.c.conversation_id == conversation_id)
            .cte("path", recursive=True)
        )
        steps = steps.union_all(
            select(*said, steps.c.depth + 1).join(steps, _messages.c.id == steps.c.parent_id)
        )
        query = select(steps.c.id, steps.c.role, steps.c.content).order_by(steps.c.depth.desc())
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [Said(row.id, row.role, row.content) for row in rows]

    async def append(
        self,
        conversation_id: str,
        *,
        role: str,
        content: str,
        parent_id: str | None,
        run_id: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> Message:
        """Store a message under ``parent_id`` (a message of this conversation, or None for a
        new root). The conversation's first question gives it its title if it has none."""
        stamp = now()
        async with self.sessions.begin() as session:
            # Numbering first: the update takes the write lock, so appends never interleave.
            seq = await session.scalar(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(message_count=ConversationRow.message_count + 1, updated_at=stamp)
                .returning(ConversationRow.message_count)
            )
            if seq is None:
                raise NotFound(f"conversation {conversation_id} not found")
            if parent_id is not None:
                owner = await session.scalar(
                    select(MessageRow.conversation_id).where(MessageRow.id == parent_id)
                )
                if owner != conversation_id:
                    raise NotFound(f"message {parent_id} is not in conversation {conversation_id}")
            if role == "user":
                await session.execute(
                    update(ConversationRow)
                    .where(ConversationRow.id == conversation_id, ConversationRow.title.is_(None))
                    .values(title=title_of(content))
                )
            row = MessageRow(
                id=new_id("msg"),
                conversation_id=conversation_id,
                seq=seq,
                parent_id=parent_id,
                role=role,
                content=content,
                run_id=run_id,
                usage=usage,
                created_at=stamp,
            )
            session.add(row)
        return Message(
            id=row.id,
            role=role,
            content=content,
            parent_id=parent_id,
            run_id=run_id,
            usage=usage,
            created_at=stamp,
        )

    async def _read(self, query: Select[Any]) -> list[Message]:
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [_message(row) for row in rows]


def _message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        role=row.role,
        content=row.content,
        parent_id=row.parent_id,
        run_id=row.run_id,
        usage=row.usage,
        created_at=row.created_at,
    )


def _conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        id=row.id,
        target=row.target,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
