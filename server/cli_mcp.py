"""``nodeloom mcp tools``: the tools of the MCP servers in ``mcp.toml``; and `using_mcp_tools`,
which lets the commands that validate and run workflows use those tools."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from engine.nodes.registry import NodeRegistry
from nodes.tool import tools_of
from nodes.tools.mcp_config import CONFIG_VARIABLE, config_path, load_config

if TYPE_CHECKING:
    from nodes.tools.mcp import McpServers, McpTool

# `nodes.tools.mcp` (and the MCP SDK, ~0.4 s to import) only when there is an mcp.toml.

T = TypeVar("T")
Handler = Callable[[argparse.Namespace, NodeRegistry], int]


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
    reached is logged on stderr), so that a workflow naming them validates. The servers are
    stopped once their tools are listed; a run starts a server again on its first call, and
    `closing_mcp_servers` stops it at the end."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace, registry: NodeRegistry) -> int:
        servers = configured_servers()
        tools = tools_of(registry)
        if servers is not None and servers.names and tools is not None:

            async def discover() -> None:
                try:
                    await servers.start(tools)
                finally:
                    await servers.close()

            asyncio.run(discover())
        return handler(args, registry)

    return wrapped


async def closing_mcp_servers(registry: NodeRegistry, work: Awaitable[T]) -> T:
    """Await ``work``, then stop the MCP servers whose tools ``registry`` holds."""
    try:
        return await work
    finally:
        tools = tools_of(registry)
        if tools is not None and any(tools.source(name).startswith("mcp:") for name in tools.names):
            from nodes.tools.mcp import servers_in  # noqa: PLC0415

            for servers in servers_in(tools):
                await servers.close()


def configured_servers() -> McpServers | None:
    """The servers of ``$NODELOOM_MCP_CONFIG`` (default ``./mcp.toml``); None without the file
    (and then the MCP SDK is not imported)."""
    configs = load_config(config_path(os.environ))
    if configs is None:
        return None
    from nodes.tools.mcp import McpServers  # noqa: PLC0415

    return McpServers(configs, os.environ)
