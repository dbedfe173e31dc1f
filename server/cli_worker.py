"""``nodeloom worker``: execute the nodes of queued runs from a shared PostgreSQL database."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from engine.distributed.pgq import PgQueuerDispatcher
from engine.distributed.worker import Worker, session_settings
from engine.knowledge.service import Knowledge
from engine.models import ModelService
from engine.nodes.registry import NodeRegistry
from engine.settings import SettingInvalid
from engine.storage.database import (
    MIGRATIONS,
    Database,
    StorageUnavailable,
    asyncpg_dsn,
    database_url,
)
from nodes import knowledge_slot
from nodes.tool import tools_of
from server.cli_mcp import configured_servers
from server.settings import read_settings

DEFAULT_CONCURRENCY = 8


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], db_help: str
) -> None:
    worker = commands.add_parser(
        "worker", help="execute the nodes of queued runs from a shared PostgreSQL database"
    )
    worker.add_argument("--db", metavar="URL", help=db_help + "; must be PostgreSQL")
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"nodes this worker executes at once at most (default {DEFAULT_CONCURRENCY})",
    )
    worker.add_argument(
        "--lease-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds without a heartbeat before another worker takes a node over "
        "(default: $NODELOOM_LEASE_TIMEOUT_S, else 30); the same on every worker",
    )
    worker.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="folder file nodes read and write (default: $NODELOOM_WORKSPACE, else ./workspace)",
    )
    worker.set_defaults(handler=worker_command)


def _positive_int(text_value: str) -> int:
    try:
        number = int(text_value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1, got {text_value!r}"
        )
    return number


def worker_command(args: argparse.Namespace, registry: NodeRegistry) -> int:
    if args.lease_timeout is not None and not args.lease_timeout > 0:
        raise SettingInvalid(f"--lease-timeout must be a positive number, got {args.lease_timeout}")
    settings = read_settings(
        database_url=args.db, workspace=args.workspace, lease_timeout_s=args.lease_timeout
    )
    url = database_url(settings.database_url)
    if not url.drivername.startswith("postgresql"):
        raise StorageUnavailable(
            "nodeloom worker needs a PostgreSQL database shared with the server "
            f"(--db postgresql+asyncpg://…), not {url.render_as_string(hide_password=True)}"
        )
    return asyncio.run(
        _serve(
            url.render_as_string(hide_password=False),
            registry,
            concurrency=args.concurrency,
            lease_timeout_s=settings.lease_timeout_s,
            workspace=settings.workspace,
            max_items=settings.map_max_items,
        )
    )


async def _serve(
    url: str,
    registry: NodeRegistry,
    *,
    concurrency: int,
    lease_timeout_s: float,
    workspace: Path,
    max_items: int,
) -> int:
    database = await Database.connect(url, migrate=False)
    models = ModelService.from_env(os.environ)
    servers = configured_servers()  # the MCP tools the plans it is given may call
    # The collections its `retrieve` nodes search (indexing is the server's work).
    knowledge = Knowledge(database, models, workspace=workspace)
    slot = knowledge_slot(registry)
    if slot is not None:
        slot.attach(knowledge)
    try:
        await check_schema(database)
        tools = tools_of(registry)
        if servers is not None and tools is not None:
            await servers.start(tools)
        worker = Worker(
            database,
            PgQueuerDispatcher(asyncpg_dsn(database.engine.url), session_settings(lease_timeout_s)),
            registry,
            concurrency=concurrency,
            lease_timeout_s=lease_timeout_s,
            workspace=workspace,
            models=models,
            max_items=max_items,
        )
        await database.engine.dispose()  # connections made from now on get the worker's settings
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        shown = database.engine.url.render_as_string(hide_password=True)
        print(
            f"nodeloom worker {worker.name}: executing nodes from {shown} "
            f"(concurrency {concurrency}, lease {lease_timeout_s:g} s)",
            file=sys.stderr,
            flush=True,
        )
        await worker.serve(stop)
        return 0
    finally:
        if servers is not None:
            await servers.close()
        await knowledge.close()
        await models.close()
        await database.close()


async def check_schema(database: Database) -> None:
    """`StorageUnavailable` unless the database is at this nodeloom's schema revision (workers
    never migrate: the server does, on start)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    shown = database.engine.url.render_as_string(hide_password=True)
    async with database.engine.connect() as connection:
        found = await connection.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        revision = (
            await connection.scalar(text("SELECT version_num FROM alembic_version"))
            if found
            else None
        )
    if revision != head:
        state = "has no nodeloom tables" if revision is None else f"is at revision {revision}"
        raise StorageUnavailable(
            f"database {shown} {state}, this nodeloom needs revision {head}: start "
            f"`nodeloom serve --db …` against it once (it migrates on start), then the workers"
        )
