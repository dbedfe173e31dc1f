"""Webhooks (SPEC §16): a URL per hook that starts a run of its workflow, for callers who sign
the body with the hook's secret. The secret is stored as given out, since checking an HMAC needs
it (a hash of it would not do); it is shown once, when made or rotated, and never listed."""

from __future__ import annotations

import secrets
from datetime import datetime

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import NotFound
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import WebhookRow

__all__ = ["Hook", "HookStore", "hook_url"]


def hook_url(hook_id: str) -> str:
    return f"/hooks/{hook_id}"


class Hook(msgspec.Struct, kw_only=True):
    """A hook as listed: everything but its secret."""

    id: str
    workflow_id: str
    url: str
    created_at: datetime
    rotated_at: datetime | None = None


class HookStore:
    def __init__(self, database: Database) -> None:
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def create(self, workflow_id: str, *, owner_id: str | None) -> tuple[Hook, str]:
        """A new hook and its secret."""
        row = WebhookRow(
            id=new_id("hook"),
            workflow_id=workflow_id,
            owner_id=owner_id,
            secret=_secret(),
            created_at=now(),
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return _hook(row), row.secret

    async def of_workflow(self, workflow_id: str) -> list[Hook]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(WebhookRow)
                .where(WebhookRow.workflow_id == workflow_id)
                .order_by(WebhookRow.created_at, WebhookRow.id)
            )
            return [_hook(row) for row in rows]

    async def rotate(self, workflow_id: str, hook_id: str) -> tuple[Hook, str]:
        """A new secret for the hook; the old one stops working at once."""
        secret = _secret()
        async with self.sessions.begin() as session:
            row = await session.scalar(
                update(WebhookRow)
                .where(WebhookRow.id == hook_id, WebhookRow.workflow_id == workflow_id)
                .values(secret=secret, rotated_at=now())
                .returning(WebhookRow)
            )
            if row is None:
                raise NotFound(f"hook {hook_id} not found")
            return _hook(row), secret

    async def delete(self, workflow_id: str, hook_id: str) -> None:
        async with self.sessions.begin() as session:
            done = await session.execute(
                delete(WebhookRow).where(
                    WebhookRow.id == hook_id, WebhookRow.workflow_id == workflow_id
                )
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"hook {hook_id} not found")

    async def row(self, hook_id: str) -> WebhookRow | None:
        """The hook a call names, with its secret: None when there is none."""
        async with self.sessions() as session:
            return await session.get(WebhookRow, hook_id)


def _secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _hook(row: WebhookRow) -> Hook:
    return Hook(
        id=row.id,
        workflow_id=row.workflow_id,
        url=hook_url(row.id),
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )
