"""A `tool` node calling an MCP server's tool on a `nodeloom worker`: the worker starts the
servers of the mcp.toml its environment names, as `nodeloom serve` does."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.distributed.launch import Queued
from engine.runs.service import RunService
from engine.storage.database import Database
from nodes.tool import tools_of
from nodes.tools.mcp import McpServers
from tests.support.documents import ROOT, workflow
from tests.support.nodes import test_registry

ADDING = workflow(
    [
        {"id": "args", "type": "input", "params": {"name": "args"}},
        {"id": "add", "type": "tool", "params": {"tool": "mcp.test.add"}},
        {"id": "sum", "type": "output", "params": {"name": "sum"}},
    ],
    [("args.value", "add.args"), ("add.result", "sum.value")],
)


def mcp_toml(folder: Path) -> Path:
    config = folder / "mcp.toml"
    server = ROOT / "tests" / "support" / "mcp_server.py"
    config.write_text(f'[servers.test]\ncommand = "{sys.executable}"\nargs = ["{server}"]\n')
    return config


async def queuing_service(database: Database, config: Path, folder: Path) -> RunService:
    """The server's side: it validates documents with the MCP tools of ``config`` (started
    once to learn them), and queues runs for the workers, which call the tools."""
    registry = test_registry()
    tools = tools_of(registry)
    servers = McpServers.from_environ({"NODELOOM_MCP_CONFIG": str(config)})
    assert tools is not None
    assert servers is not None
    assert await servers.start(tools) == {}
    await servers.close()
    return RunService(database, registry, launcher=Queued(database, workspace=folder / "ws"))


async def test_a_worker_calls_the_tools_of_its_mcp_servers(
    workers: Any, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = mcp_toml(tmp_path)
    monkeypatch.setenv("NODELOOM_MCP_CONFIG", str(config))
    workers(1)  # inherits the environment

    service = await queuing_service(database, config, tmp_path)
    try:
        active = await service.start(ADDING, {"args": {"a": 20, "b": 22}})
        record = await asyncio.wait_for(active.wait(), 30)
    finally:
        await service.close()
    assert record.status == "succeeded", record.error
    assert record.outputs == {"sum": {"sum": 42}}


async def test_a_worker_lacking_a_tool_fails_the_node_calling_it(
    workers: Any, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = mcp_toml(tmp_path)
    monkeypatch.delenv("NODELOOM_MCP_CONFIG", raising=False)
    workers(1)  # no mcp.toml where it runs (the repository's root): it has no MCP tools

    service = await queuing_service(database, config, tmp_path)
    try:
        active = await service.start(ADDING, {"args": {"a": 1, "b": 2}})
        record = await asyncio.wait_for(active.wait(), 30)  # before: it never ended
    finally:
        await service.close()
    assert record.status == "failed"
    assert "unknown tool 'mcp.test.add'" in (record.nodes["add"].error or "")
