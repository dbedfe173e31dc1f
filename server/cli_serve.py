"""``nodeloom serve``; the account commands are in `server.cli_accounts`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.nodes.registry import NodeRegistry
from engine.settings import SettingInvalid
from engine.storage.database import database_url
from server import cli_accounts
from server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig


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
    cli_accounts.add_commands(commands, db_help)


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
