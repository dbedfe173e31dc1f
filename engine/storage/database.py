"""Connecting to SQLite or PostgreSQL, and bringing the schema up to date with Alembic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import msgspec
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from engine.errors import NodeloomError
from engine.storage.group_commit import Committer

__all__ = [
    "DEFAULT_URL",
    "MIGRATIONS",
    "Database",
    "StorageUnavailable",
    "asyncpg_dsn",
    "database_url",
]

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_URL = "sqlite+aiosqlite:///.nodeloom/nodeloom.db"
_MIGRATION_LOCK = 7_402_113  # PostgreSQL advisory lock id for migrations
T = TypeVar("T")


class StorageUnavailable(NodeloomError, ConnectionError):
    """The database cannot be reached, opened or migrated."""


def database_url(url: str | None = None) -> URL:
    """The URL to use: the argument, else SQLite in ``.nodeloom/``.

    Plain ``sqlite://`` and ``postgresql://`` URLs get their async drivers.
    """
    raw = url or DEFAULT_URL
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise StorageUnavailable(f"not a database URL: {raw!r}") from None
    drivers = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
    }
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise StorageUnavailable(
            f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or postgresql://…"
        )
    return parsed


def asyncpg_dsn(url: URL) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as the DSN asyncpg itself takes."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=10000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _closed_is_replaced(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """A pooled PostgreSQL connection that the server closed (a restart, an ended session) is
    replaced when it is handed out. asyncpg notices a closed socket while the connection sits in
    the pool, so this costs no round trip, unlike SQLAlchemy's pre-ping (three with asyncpg)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the connection was closed by the server")


class _WriteThread:
    """One thread with its own connection to a SQLite file, running whole transactions: a
    transaction is then one hop between threads, where through aiosqlite each statement, BEGIN
    and COMMIT is a hop of its own."""

    def __init__(self, url: URL, options: dict[str, Any]) -> None:
        self._engine = create_engine(url.set(drivername="sqlite"), poolclass=NullPool, **options)
        event.listen(self._engine, "connect", _sqlite_pragmas)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nodeloom-sqlite")
        self._connection: Connection | None = None

    async def run(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, work)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        if self._connection is None:
            self._connection = self._engine.connect()
        with self._connection.begin():
            return work(self._connection)

    async def close(self) -> None:
        if self._connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._connection.close)
        self._thread.shutdown(wait=True)
        self._engine.dispose()


class Database:
    """An async engine plus what nodeloom needs to know about its dialect."""

    def __init__(self, engine: AsyncEngine, write_thread: _WriteThread | None = None) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        # For reads of one statement: no transaction around it, so no BEGIN and ROLLBACK.
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_thread = write_thread
        self._reads: asyncpg.Pool | None = None  # PostgreSQL: see `fetchrow`
        self._reads_made = asyncio.Lock()
        self._committer: Committer | None = None  # PostgreSQL: see `committer`

    async def fetchrow(self, query: str, *args: Any) -> Any:
        """The first row of a short read on PostgreSQL (asyncpg's ``$1`` parameters), through
        a small asyncpg pool of its own: for a lookup by key, SQLAlchemy's async layers cost
        the server several times what the query does. Connections the database closed are
        replaced when taken from the pool."""
        return await (await self._read_pool()).fetchrow(query, *args)

    @contextlib.asynccontextmanager
    async def reads(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the same pool, for a read of a few statements (PostgreSQL)."""
        async with (await self._read_pool()).acquire() as connection:
            yield connection

    async def _read_pool(self) -> asyncpg.Pool:
        if self._reads is None:
            async with self._reads_made:
                if self._reads is None:
                    self._reads = await asyncpg.create_pool(
                        asyncpg_dsn(self.engine.url), min_size=1, max_size=4
                    )
        return self._reads

    def committer(self) -> Committer:
        """The connection group commits go on (PostgreSQL), shared by the writers of every run
        service on this database (see engine/storage/group_commit.py)."""
        if self._committer is None:
            self._committer = Committer(asyncpg_dsn(self.engine.url))
        return self._committer

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (synchronous SQLAlchemy code) in one transaction, without blocking the
        event loop: on a SQLite file, in a thread of its own; else through the async engine."""
        if self._write_thread is not None:
            return await self._write_thread.run(work)
        async with self.engine.begin() as connection:
            return await connection.run_sync(work)

    @classmethod
    async def connect(cls, url: str | None = None, *, migrate: bool = True) -> Database:
        """Open the database and migrate it to the current schema (one clear error if not)."""
        parsed = database_url(url)
        json: dict[str, Any] = {"json_serializer": _json, "json_deserializer": msgspec.json.decode}
        options = dict(json)
        if parsed.drivername.startswith("sqlite"):
            if parsed.database in (None, "", ":memory:"):
                raise StorageUnavailable(
                    "runs are stored for good: give SQLite a file (sqlite:///PATH), "
                    "not an in-memory database"
                )
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # A few connections: WAL lets reads run beside a write, and writes mostly go through
            # the ResultWriter one transaction at a time, so SQLite's busy handler (which sleeps
            # up to 100 ms per retry) seldom runs; more connections would contend for the lock.
            options |= {"pool_size": 4, "max_overflow": 0, "pool_timeout": 60}
        else:
            options |= {"pool_size": 10, "max_overflow": 20}
        engine = create_async_engine(parsed, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(engine.sync_engine, "checkout", _closed_is_replaced)
        sqlite_file = engine.dialect.name == "sqlite"
        database = cls(engine, _WriteThread(parsed, json) if sqlite_file else None)
        shown = parsed.render_as_string(hide_password=True)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            if migrate:
                await database.migrate()
        except (OSError, OperationalError, DBAPIError) as exc:
            await database.close()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StorageUnavailable(f"cannot use database {shown}: {reason}") from None
        return database

    async def migrate(self) -> None:
        async with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            await connection.run_sync(_upgrade)

    async def close(self) -> None:
        if self._write_thread is not None:
            await self._write_thread.close()
        if self._reads is not None:
            await self._reads.close()
        if self._committer is not None:
            await self._committer.close()
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
