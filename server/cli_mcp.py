"""``nodeloom mcp tools``: the tools of the MCP servers in ``mcp.toml``; and `using_mcp_tools`,
which lets the commands that validate and run workflows use those tools, in one event loop
(`run`): a stdio server started to list its tools is the one the run calls."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from engine.nodes.registry import NodeRegistry
from nodes.tool import tools_of
from nodes.tools.mcp_config import CONFIG_VARIABLE, config_path, load_config

if TYPE_CHECKING:
    from nodes.tools.mcp import McpServers, McpTool

# `nodes.tools.mcp` (and the MCP SDK, ~0.4 s to import) only when there is an mcp.toml.

T = TypeVar("T")
Handler = Callable[[argparse.Namespace, NodeRegistry], int]

# The event loop of the command being run, while `using_mcp_tools` holds one.
_loop: ContextVar[asyncio.Runner | None] = ContextVar("nodeloom_cli_loop", default=None)


def run(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)``, in the command's event loop when it has one (see
    `using_mcp_tools`): what its MCP servers opened in an earlier step stays open."""
    runner = _loop.get()
    return asyncio.run(work) if runner is None else runner.run(work)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = commands.add_parser(
        "mcp", help=f"the MCP servers of mcp.toml (${CONFIG_VARIABLE}, default ./mcp.toml)"
    )
    actions = mcp.add_subparsers(required=True, metavar="ACTION")
    tools = actions.add_parser(
        "tools", help="each server's tools, or why it cannot be reached (exit 1 if one cannot)"
    )
    tools.set_defaults(handler=list_tools)


def list_tools(args: argparse.Namespace, registry: NodeRegistry) -> int:
    servers = configured_servers()
    if servers is None:
        print(
            f"no MCP servers: {config_path(os.environ)} does not exist "
            f"(set ${CONFIG_VARIABLE} to name another file)",
            file=sys.stderr,
        )
        return 0
    if not servers.names:
        print(f"no MCP servers in {config_path(os.environ)}", file=sys.stderr)
        return 0

    async def discover() -> dict[str, list[McpTool] | str]:
        try:
            return await servers.tools()
        finally:
            await servers.close()

    failed = 0
    for name, found in asyncio.run(discover()).items():
        if isinstance(found, str):
            failed += 1
            print(f"{name}: {found.removeprefix(f'MCP server {name!r} ').removeprefix(': ')}")
            continue
        print(f"{name}: {len(found)} tool{'' if len(found) == 1 else 's'}")
        for tool in found:
            summary = tool.description.splitlines()[0] if tool.description else ""
            print(f"  {tool.name}\t{summary}".rstrip())
    return 1 if failed else 0


def using_mcp_tools(handler: Handler) -> Handler:
    """``handler`` with the tools of the MCP servers registered first (a server that cannot be
    reached is logged on stderr), so that a workflow naming them validates. The command's
    steps (`run`) share one event loop, in which the servers stay up from their tools' listing
    to the end of the command, and are stopped then."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace, registry: NodeRegistry) -> int:
        servers = configured_servers()
        tools = tools_of(registry)
        if servers is None or not servers.names or tools is None:
            return handler(args, registry)
        with asyncio.Runner() as runner:
            token = _loop.set(runner)
            try:
                runner.run(servers.start(tools))
                return handler(args, registry)
            finally:
                _loop.reset(token)
                runner.run(servers.close())

    return wrapped


def configured_servers() -> McpServers | None:
    """The servers of ``$NODELOOM_MCP_CONFIG`` (default ``./mcp.toml``); None without the file
    (and then the MCP SDK is not imported)."""
    configs = load_config(config_path(os.environ))
    if configs is None:
        return None
    from nodes.tools.mcp import McpServers  # noqa: PLC0415

    return McpServers(configs, os.environ)
