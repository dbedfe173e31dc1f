"""MCP both ways (SPEC §15): what calling a workflow through `/mcp` costs over the REST API, and
what calling a stdio MCP server's tool from a `tool` node costs over a built-in tool.

    .venv/bin/python bench/mcp_calls.py             # 200 calls per side and round, 3 rounds
    .venv/bin/python bench/mcp_calls.py --quick     # 30 calls per side, 2 rounds

1. `/mcp`: a `nodeloom serve` of its own (SQLite), the 3-node workflow input -> template ->
   output. One side calls it as a tool through the SDK's `Client` (one connection kept open,
   the current protocol), the other starts the same run with `POST /api/workflows/{id}/runs`
   and `"wait": true` (httpx, keep-alive). Calls one after another; the median of each side,
   the sides measured in alternating rounds. Target: MCP <= 1.3x REST.
2. A stdio MCP tool from a `tool` node: in this process, runs of input -> tool -> output where
   the tool is `mcp.bench.echo` (tests/support/mcp_server.py, started once before measuring) or
   the built-in `json_path` (no I/O). The difference of the medians is what going through MCP
   adds to a node; the echo tool's own work is nil. Target: <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp import Client  # noqa: E402

from engine.documents.document import from_builtins  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from nodes.tool import tools_of  # noqa: E402
from nodes.tools.mcp import McpServers  # noqa: E402
from server.mcp import tool_name  # noqa: E402
from server.plugins import installed_registry  # noqa: E402
from tests.support import postgres  # noqa: E402

TARGET_RATIO = 1.3
TARGET_TOOL_MS = 5.0
WORKFLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Trivial",
    "nodes": [
        {"id": "who", "type": "input", "params": {"name": "who", "schema": {"type": "string"}}},
        {"id": "say", "type": "template", "params": {"template": "Hello, {{ who }}!"}},
        {"id": "out", "type": "output", "params": {"name": "greeting"}},
    ],
    "edges": [
        {"from": "who.value", "to": "say.who"},
        {"from": "say.text", "to": "out.value"},
    ],
}
MCP_TOML = """
[servers.bench]
command = "{python}"
args = ["{server}"]
"""

Call = Callable[[int], Awaitable[None]]


async def timed(call: Call, count: int) -> list[float]:
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        await call(number)
        latencies.append(time.perf_counter() - started)
    return latencies


async def alternate(sides: dict[str, Call], calls: int, rounds: int) -> dict[str, list[float]]:
    """Every side's latencies over ``rounds`` alternating rounds, after a warm-up each."""
    for call in sides.values():
        await timed(call, max(5, calls // 10))
    measured: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            measured[name] += await timed(call, calls)
    return measured


def median_ms(latencies: list[float]) -> float:
    return statistics.median(latencies) * 1000


@contextlib.asynccontextmanager
async def served(folder: Path) -> AsyncIterator[str]:
    """A `nodeloom serve` of its own on SQLite; its base URL."""
    port = postgres._free_port()
    env = {**os.environ, "NODELOOM_MODELS_DIR": str(folder / "models")}
    command = [
        sys.executable, "-m", "server.cli", "serve", "--port", str(port),
        "--db", f"sqlite+aiosqlite:///{folder}/mcp.db", "--workspace", str(folder / "workspace"),
    ]  # fmt: skip
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)  # noqa: ASYNC220
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await http.get("/api/health")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        message = f"the server did not start: see {folder}/server.log"
                        raise RuntimeError(message) from None
                    await asyncio.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


async def through_mcp(folder: Path, args: argparse.Namespace) -> bool:
    async with served(folder) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        workflow_id = (await http.post("/api/workflows", json=WORKFLOW)).json()["id"]
        tool = tool_name(workflow_id, WORKFLOW["name"])
        async with Client(f"{base}/mcp") as client:

            async def by_mcp(number: int) -> None:
                result = await client.call_tool(tool, {"who": f"call {number}"})
                if result.is_error:
                    raise RuntimeError(f"the call failed: {result.content}")

            async def by_rest(number: int) -> None:
                body = {"inputs": {"who": f"call {number}"}, "wait": True}
                response = await http.post(f"/api/workflows/{workflow_id}/runs", json=body)
                if response.status_code != 201 or response.json()["status"] != "succeeded":
                    raise RuntimeError(f"the run failed: {response.text}")

            measured = await alternate({"mcp": by_mcp, "rest": by_rest}, args.calls, args.rounds)
    mcp, rest = median_ms(measured["mcp"]), median_ms(measured["rest"])
    ratio = mcp / rest
    print(f"workflow through /mcp          {mcp:8.2f} ms median ({len(measured['mcp'])} calls)")
    print(f"same run through REST, wait    {rest:8.2f} ms median ({len(measured['rest'])} calls)")
    print(f"/mcp / REST                    {ratio:8.2f}x (target <= {TARGET_RATIO}x)")
    return ratio <= TARGET_RATIO


def tool_workflow(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": f"Calls {tool}",
        "nodes": [
            {"id": "args", "type": "input", "params": {"name": "args", "default": args}},
            {"id": "call", "type": "tool", "params": {"tool": tool}},
            {"id": "out", "type": "output", "params": {"name": "result"}},
        ],
        "edges": [
            {"from": "args.value", "to": "call.args"},
            {"from": "call.result", "to": "out.value"},
        ],
    }


async def stdio_tool(folder: Path, args: argparse.Namespace) -> bool:
    config = folder / "mcp.toml"
    config.write_text(
        MCP_TOML.format(python=sys.executable, server=ROOT / "tests" / "support" / "mcp_server.py")
    )
    registry = installed_registry()
    tools = tools_of(registry)
    servers = McpServers.from_environ({"NODELOOM_MCP_CONFIG": str(config)})
    if tools is None or servers is None:
        raise RuntimeError("no tool registry or no MCP configuration")
    database = await Database.connect(f"sqlite+aiosqlite:///{folder}/tools.db")
    service = RunService(database, registry, workspace=folder / "workspace")
    try:
        failed = await servers.start(tools)
        if failed:
            raise RuntimeError(f"the MCP server did not start: {failed}")
        documents = {
            "mcp": from_builtins(tool_workflow("mcp.bench.echo", {"text": "hello"})),
            "builtin": from_builtins(
                tool_workflow("json_path", {"value": {"text": "hello"}, "path": "$.text"})
            ),
        }

        def side(document: Any) -> Call:
            async def one(number: int) -> None:
                # A fresh input each time, so that nothing is taken from an earlier run.
                del number
                record = await (await service.start(document, caller_waits=True)).wait()
                if record.status != "succeeded":
                    raise RuntimeError(f"the run failed: {record.error}")

            return one

        measured = await alternate(
            {name: side(document) for name, document in documents.items()},
            args.calls,
            args.rounds,
        )
    finally:
        await servers.close()
        await service.close()
        await database.close()
    mcp, builtin = median_ms(measured["mcp"]), median_ms(measured["builtin"])
    print(f"run with a stdio MCP tool node {mcp:8.2f} ms median")
    print(f"run with a built-in tool node  {builtin:8.2f} ms median")
    print(f"MCP tool overhead              {mcp - builtin:8.2f} ms (target <= {TARGET_TOOL_MS} ms)")
    return mcp - builtin <= TARGET_TOOL_MS


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        folder = Path(tmp)
        (folder / "models").mkdir()
        ok = await through_mcp(folder, args)
        ok &= await stdio_tool(folder, args)
    print("targets met" if ok else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="30 calls per side, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 30, 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
