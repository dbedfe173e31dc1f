"""Users made straight in the database, each with a bearer token for the API."""

from __future__ import annotations

from engine.storage.accounts import Accounts
from engine.storage.database import Database

__all__ = ["tokens_for"]


async def tokens_for(database_url: str, *names: str) -> list[str]:
    database = await Database.connect(database_url)
    try:
        accounts = Accounts(database)
        for name in names:
            await accounts.create_user(name)
        return [(await accounts.create_token(name))[1] for name in names]
    finally:
        await database.close()
