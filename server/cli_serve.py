"""``nodeloom serve``, ``nodeloom users create`` and ``nodeloom tokens create``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from engine.nodes.registry import NodeRegistry
from engine.settings import SettingInvalid
from engine.storage.accounts import Accounts
from engine.storage.database import Database, database_url
from server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig

T = TypeVar("T")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], db_help: str
) -> None:
    serve = commands.add_parser("serve", help="serve the canvas and the REST API over HTTP")
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    serve.add_argument("--db", metavar="URL", help=db_help)
    serve.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="folder of the files workflows read and write (default: $NODELOOM_WORKSPACE, "
        "else ./workspace)",
    )
    serve.add_argument(
        "--examples",
        type=Path,
        metavar="DIR",
        help="add the workflows in DIR that the database lacks (by name), and copy DIR/data/* "
        "into the workspace",
    )
    serve.add_argument(
        "--execution",
        choices=("in-process", "workers"),
        help="where runs execute: in this process, or queued for `nodeloom worker`s on a "
        "shared PostgreSQL (default: $NODELOOM_EXECUTION, else in-process)",
    )
    serve.set_defaults(handler=serve_command)

    users = commands.add_parser("users", help="manage the users of the API")
    user_commands = users.add_subparsers(required=True, metavar="ACTION")
    create_user = user_commands.add_parser("create", help="create a user (ends open local mode)")
    create_user.add_argument("name", metavar="NAME")
    create_user.add_argument("--db", metavar="URL", help=db_help)
    create_user.set_defaults(handler=users_create)

    tokens = commands.add_parser("tokens", help="manage API tokens")
    token_commands = tokens.add_subparsers(required=True, metavar="ACTION")
    create_token = token_commands.add_parser(
        "create", help="create a bearer token for user NAME; it is printed once, stored hashed"
    )
    create_token.add_argument("name", metavar="NAME", help="the user the token belongs to")
    create_token.add_argument("--db", metavar="URL", help=db_help)
    create_token.set_defaults(handler=tokens_create)


def serve_command(args: argparse.Namespace, registry: NodeRegistry) -> int:
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from server.logs import configure_logging  # noqa: PLC0415
    from server.web import create_web_app  # noqa: PLC0415

    config = ServerConfig.from_env(
        database_url=args.db,
        workspace=args.workspace,
        host=args.host,
        port=args.port,
        execution=args.execution,
    )
    if config.execution == "workers" and not database_url(
        config.database_url
    ).drivername.startswith("postgresql"):
        raise SettingInvalid(
            "runs execute on workers only with a PostgreSQL database shared with them "
            "(--db postgresql+asyncpg://…)"
        )
    configure_logging()
    if args.examples is not None:
        from server.examples import seed_examples  # noqa: PLC0415

        added = seed_examples(config.database_url, args.examples, config.workspace)
        if added:
            print(f"nodeloom: added example workflows: {', '.join(added)}", file=sys.stderr)
    app = create_web_app(config, registry=registry)
    uvicorn.run(app, host=config.host, port=config.port, log_config=None, access_log=False)
    return 0


def _with_accounts(db: str | None, work: Callable[[Accounts], Awaitable[T]]) -> T:
    async def main() -> T:
        database = await Database.connect(db)
        try:
            return await work(Accounts(database))
        finally:
            await database.close()

    return asyncio.run(main())


def users_create(args: argparse.Namespace, registry: NodeRegistry) -> int:
    user = _with_accounts(args.db, lambda accounts: accounts.create_user(args.name))
    print(f"user {user.name} created ({user.id})")
    print(f"give them a token: nodeloom tokens create {user.name}")
    return 0


def tokens_create(args: argparse.Namespace, registry: NodeRegistry) -> int:
    user, token = _with_accounts(args.db, lambda accounts: accounts.create_token(args.name))
    print(f"token for {user.name} (shown once, only its hash is stored):", file=sys.stderr)
    print(token)
    return 0
