"""``nodeloom users create|set-password`` and ``nodeloom tokens create|list|revoke`` (SPEC §18)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from engine.errors import NodeloomError
from engine.nodes.registry import NodeRegistry
from engine.storage.accounts import Accounts
from engine.storage.database import Database

T = TypeVar("T")


class PasswordMismatch(NodeloomError, ValueError):
    """The password typed twice was not the same."""


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], db_help: str
) -> None:
    users = commands.add_parser("users", help="manage the users of the API")
    user_commands = users.add_subparsers(required=True, metavar="ACTION")
    create_user = user_commands.add_parser("create", help="create a user (ends open local mode)")
    create_user.add_argument("name", metavar="NAME")
    create_user.add_argument(
        "--password",
        action="store_true",
        help="give the user a password to sign in with: asked for on a terminal, else read "
        "from the first line of standard input",
    )
    create_user.add_argument("--db", metavar="URL", help=db_help)
    create_user.set_defaults(handler=users_create)
    set_password = user_commands.add_parser(
        "set-password", help="set or change a user's password (asked for, or read from stdin)"
    )
    set_password.add_argument("name", metavar="NAME")
    set_password.add_argument("--db", metavar="URL", help=db_help)
    set_password.set_defaults(handler=users_set_password)

    tokens = commands.add_parser("tokens", help="manage API tokens")
    token_commands = tokens.add_subparsers(required=True, metavar="ACTION")
    create_token = token_commands.add_parser(
        "create", help="create a bearer token for user USER; it is printed once, stored hashed"
    )
    create_token.add_argument("name", metavar="USER", help="the user the token belongs to")
    create_token.add_argument("--label", default="", help="a name to tell the token by")
    create_token.add_argument(
        "--expires-in-days", type=_days, metavar="N", help="refuse the token after N days"
    )
    create_token.add_argument("--db", metavar="URL", help=db_help)
    create_token.set_defaults(handler=tokens_create)
    list_tokens = token_commands.add_parser(
        "list", help="the tokens (of USER, else of everyone), never their secrets"
    )
    list_tokens.add_argument("name", metavar="USER", nargs="?")
    list_tokens.add_argument("--db", metavar="URL", help=db_help)
    list_tokens.set_defaults(handler=tokens_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id, at once")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    revoke.add_argument("--db", metavar="URL", help=db_help)
    revoke.set_defaults(handler=tokens_revoke)


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError(f"a number of days from 1 to 3650, got {text!r}")
    return days


def _with_accounts(db: str | None, work: Callable[[Accounts], Awaitable[T]]) -> T:
    async def main() -> T:
        database = await Database.connect(db)
        try:
            return await work(Accounts(database))
        finally:
            await database.close()

    return asyncio.run(main())


def read_password() -> str:
    """Asked for twice on a terminal; else the first line of standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise PasswordMismatch("the two passwords differ; nothing was changed")
    return first


def users_create(args: argparse.Namespace, registry: NodeRegistry) -> int:
    password = read_password() if args.password else None
    user = _with_accounts(args.db, lambda accounts: accounts.create_user(args.name, password))
    print(f"user {user.name} created ({user.id})")
    if password is None:
        print(f"give them a token: nodeloom tokens create {user.name}")
    else:
        print("they can sign in with their password (POST /api/auth/login, or the canvas)")
    return 0


def users_set_password(args: argparse.Namespace, registry: NodeRegistry) -> int:
    password = read_password()
    user = _with_accounts(args.db, lambda accounts: accounts.set_password(args.name, password))
    print(f"password of {user.name} set")
    return 0


def tokens_create(args: argparse.Namespace, registry: NodeRegistry) -> int:
    expires = timedelta(days=args.expires_in_days) if args.expires_in_days else None
    user, token = _with_accounts(
        args.db,
        lambda accounts: accounts.create_token(args.name, name=args.label, expires_in=expires),
    )
    print(f"token for {user.name} (shown once, only its hash is stored):", file=sys.stderr)
    print(token)
    return 0


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def tokens_list(args: argparse.Namespace, registry: NodeRegistry) -> int:
    async def work(accounts: Accounts) -> list[list[str]]:
        user_id = None
        if args.name is not None:
            user_id = (await accounts.find_user(args.name)).id
        return [
            [
                token.id,
                user,
                token.name or "-",
                _stamp(token.created_at),
                _stamp(token.last_used_at),
                _stamp(token.expires_at),
            ]
            for user, token in await accounts.tokens(user_id)
        ]

    rows = _with_accounts(args.db, work)
    header = ["id", "user", "name", "created", "last used", "expires"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def tokens_revoke(args: argparse.Namespace, registry: NodeRegistry) -> int:
    _with_accounts(args.db, lambda accounts: accounts.revoke(args.token_id))
    print(f"token {args.token_id} revoked")
    return 0
