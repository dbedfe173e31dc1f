"""Storage itself, on SQLite and a real PostgreSQL: migrations from empty and from an older schema,
one clear message for a database that cannot be used, and pooled connections the database closed."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from engine.runs.service import RunService
from engine.storage.database import MIGRATIONS, Database, StorageUnavailable
from tests.support.documents import workflow
from tests.support.engine import builtin_registry


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

    def upgrade_to(revision: str) -> Any:
        def upgrade(connection: Any) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        return upgrade

    document = {"schema_version": 1, "name": "w", "nodes": [{"id": "a", "type": "template"}]}
    insert_run = text(
        "INSERT INTO runs (id, workflow_name, root_run_id, changes, snapshot, inputs, outputs,"
        " status, created_at, last_seq) VALUES (:id, 'w', 'run_old', '{}', :snapshot, '{}', '{}',"
        " 'succeeded', CURRENT_TIMESTAMP, 0)"
    )
    async with old.engine.begin() as connection:
        await connection.run_sync(upgrade_to("0001"))
        await connection.execute(insert_run, {"id": "run_old", "snapshot": json.dumps(document)})
        await connection.execute(
            text(
                "INSERT INTO node_results (run_id, node_id, status, reason, cache_key, output,"
                " attempt) VALUES ('run_old', 'a', 'succeeded', '', 'k', '{\"text\": \"x\"}', 1)"
            )
        )
        # Before 0006, a run's snapshot and the results it took over were columns of its row.
        await connection.run_sync(upgrade_to("0005"))
        await connection.execute(insert_run, {"id": "run_new", "snapshot": json.dumps(document)})
        await connection.execute(
            text(
                "UPDATE runs SET reused = '{\"a\": \"run_old\"}', parent_run_id = 'run_old'"
                " WHERE id = 'run_new'"
            )
        )
    await old.close()
    migrated = await Database.connect(database_url)
    try:
        service = RunService(migrated, builtin_registry())
        record = await service.get("run_old")
        assert (record.status, record.nodes["a"].output) == ("succeeded", {"text": "x"})
        child = await service.get("run_new")
        assert child.nodes["a"].status == "cached"
        assert child.nodes["a"].reason == "reused from run run_old"
        assert child.nodes["a"].output == {"text": "x"}
        for run_id in ("run_old", "run_new"):
            row = await service.store.run_row(run_id)
            assert await service.store.snapshot(row) == document
    finally:
        await migrated.close()


async def test_unreachable_database_gives_one_clear_message() -> None:
    with pytest.raises(StorageUnavailable, match=r"cannot use database postgresql\+asyncpg://"):
        await Database.connect("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(StorageUnavailable, match="unsupported database"):
        await Database.connect("mysql://x@y/z")
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(StorageUnavailable, match="give SQLite a file"):
            await Database.connect(memory)


async def test_connections_the_database_closed_are_replaced(service: RunService) -> None:
    """A PostgreSQL restart or ended sessions cost no failed request: pooled connections the
    server closed are replaced when handed out (SQLite has nothing to close)."""
    database = service.store.database
    document = workflow([{"id": "a", "type": "template", "params": {"template": "x"}}])
    saved = await service.store.create_workflow(document)
    assert (await (await service.start(document)).wait()).status == "succeeded"
    assert await service.store.current_version(saved.id) == 1  # a pool of its own
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
    assert await service.store.current_version(saved.id) == 1


async def test_sqlite_commits_store_values_as_sqlalchemy_does(tmp_path: Any) -> None:
    # The writer's commits bypass SQLAlchemy's execute; a workflow's row does not.
    database = await Database.connect(f"sqlite+aiosqlite:///{tmp_path}/nodeloom.db")
    service = RunService(database, builtin_registry())
    try:
        document = workflow([{"id": "a", "type": "template", "params": {"template": "ü"}}], [])
        saved = await service.store.create_workflow(document)
        run = await service.execute(document, workflow_id=saved.id, workflow_version=1)
        async with database.engine.connect() as connection:
            orm = await connection.scalar(text("SELECT created_at FROM workflows"))
            raw = (await connection.execute(text(
                "SELECT runs.created_at, runs.finished_at, runs.inputs, runs.changes,"
                " node_results.started_at, node_results.output, node_results.usage"
                " FROM runs JOIN node_results ON node_results.run_id = runs.id"
            ))).one()
    finally:
        await service.close()
        await database.close()
    shape = "%Y-%m-%d %H:%M:%S.%f"  # SQLite's DATETIME as SQLAlchemy writes it: no zone
    for stamp in (orm, raw[0], raw[1], raw[4]):
        datetime.strptime(stamp, shape)
    assert raw[1] == run.finished_at.strftime(shape)  # type: ignore[union-attr]
    assert [raw[2], raw[3], raw[5], raw[6]] == ["{}", "{}", '{"text":"ü"}', "null"]
