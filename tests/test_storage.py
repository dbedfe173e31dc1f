"""Storage itself, on SQLite and a real PostgreSQL: migrations from empty and from an older schema,
one clear message for a database that cannot be used, and pooled connections the database closed."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from engine.runs import RunService
from engine.storage.database import MIGRATIONS, Database, StorageUnavailable
from nodes.registry import NodeRegistry
from tests.conftest import workflow


async def test_migrations_run_from_empty_and_are_idempotent(database_url: str) -> None:
    first = await Database.connect(database_url)
    await first.close()
    again = await Database.connect(database_url)
    async with again.engine.connect() as connection:
        version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        tables = await connection.run_sync(
            lambda sync: set(__import__("sqlalchemy").inspect(sync).get_table_names())
        )
    await again.close()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert version == ScriptDirectory.from_config(config).get_current_head()
    assert {
        "workflows",
        "workflow_versions",
        "runs",
        "node_results",
        "blobs",
        "events",
        "agents",
        "view_states",
        "users",
        "api_tokens",
        "batches",
        "batch_runs",
    } <= tables


async def test_a_database_from_an_older_version_is_migrated_with_its_data(
    database_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config

    from engine.storage.database import MIGRATIONS

    old = await Database.connect(database_url, migrate=False)

    def upgrade_to_first(connection: Any) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    async with old.engine.begin() as connection:
        await connection.run_sync(upgrade_to_first)
        await connection.execute(
            text(
                "INSERT INTO runs (id, workflow_name, root_run_id, changes, snapshot, inputs,"
                " outputs, status, created_at, last_seq) VALUES ('run_old', 'w', 'run_old', '{}', "
                '\'{"schema_version": 1, "name": "w", "nodes": []}\', \'{}\', \'{}\', '
                "'succeeded', CURRENT_TIMESTAMP, 0)"
            )
        )
    await old.close()
    migrated = await Database.connect(database_url)
    try:
        service = RunService(migrated, NodeRegistry.builtin())
        record = await service.get("run_old")
        assert (record.status, record.nodes) == ("succeeded", {})
        assert (await service.store.run_row("run_old")).reused == {}
    finally:
        await migrated.close()


async def test_unreachable_database_gives_one_clear_message() -> None:
    with pytest.raises(StorageUnavailable, match=r"cannot use database postgresql\+asyncpg://"):
        await Database.connect("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(StorageUnavailable, match="unsupported database"):
        await Database.connect("mysql://x@y/z")


async def test_connections_the_database_closed_are_replaced(service: RunService) -> None:
    """A PostgreSQL restart or ended sessions cost no failed request: pooled connections the
    server closed are replaced when handed out (SQLite has nothing to close)."""
    database = service.store.database
    document = workflow([{"id": "a", "type": "template", "params": {"template": "x"}}])
    assert (await (await service.start(document)).wait()).status == "succeeded"
    if database.dialect == "postgresql":
        url = database.engine.url.set(drivername="postgresql")
        outside = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            await outside.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await outside.close()
        await asyncio.sleep(0.2)  # the pooled connections see their sockets close
    assert (await (await service.start(document)).wait()).status == "succeeded"
