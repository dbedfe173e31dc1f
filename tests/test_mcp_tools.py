"""Tools of MCP servers (SPEC §15) with the real parts: the SDK's client talking to a real MCP
server process (tests/support/mcp_server.py, over stdio and over Streamable HTTP), `tool` nodes
run by the real executor, and an agent driven by the embedded model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.documents.graph import validate
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from nodes import builtin_node_types
from nodes.tool import tools_of
from nodes.tools import ToolError, ToolRegistry
from nodes.tools.mcp import McpServers
from nodes.tools.mcp_config import HttpServer, ServerConfig, StdioServer
from tests.support.documents import ROOT
from tests.support.network import free_port
from tests.support.tools import error_of, result_of, run_tool, tool_workflow

SERVER = ROOT / "tests" / "support" / "mcp_server.py"
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


def stdio(name: str = "test", *, env: dict[str, str] | None = None, **options: Any) -> ServerConfig:
    return ServerConfig(name, StdioServer(sys.executable, (str(SERVER),), env or {}), **options)


async def started(*configs: ServerConfig) -> tuple[McpServers, NodeRegistry]:
    servers = McpServers(configs)
    tools = ToolRegistry.builtin()
    registry = NodeRegistry(builtin_node_types(tools))  # the node types first, as at start-up
    assert await servers.start(tools) == {}
    return servers, registry


@pytest.fixture
async def mcp() -> AsyncIterator[NodeRegistry]:
    """A registry whose `tool` and `agent` nodes may call the tools of the server ``test``."""
    servers, registry = await started(stdio(timeout_s=5))
    yield registry
    await servers.close()


# -- discovery --------------------------------------------------------------------------------


async def test_start_registers_each_tool_with_its_schema(mcp: NodeRegistry) -> None:
    tools = tools_of(mcp)
    assert tools is not None
    assert {"mcp.test.add", "mcp.test.echo", "mcp.test.fail", "calculator"} <= set(tools.names)
    add = tools.get("mcp.test.add")
    assert add is not None
    assert add.args_schema == ADD_SCHEMA
    assert add.description == "Adds two numbers.\nGives {sum}."
    described = {entry["name"]: entry for entry in tools.describe()}
    assert described["mcp.test.add"] == {
        "name": "mcp.test.add",
        "description": "Adds two numbers.\nGives {sum}.",
        "schema": ADD_SCHEMA,
        "source": "mcp:test",
    }
    assert described["calculator"]["source"] == "builtin"
    # The node types were made before the tools were registered: they show them all the same.
    assert "mcp.test.add" in mcp["tool"].params_schema["properties"]["tool"]["examples"]


async def test_a_tool_whose_schema_is_not_json_schema_is_left_out(mcp: NodeRegistry) -> None:
    tools = tools_of(mcp)
    assert tools is not None
    assert "mcp.test.broken" not in tools
    assert "mcp.test.echo" in tools


async def test_an_unreachable_server_is_reported_not_raised() -> None:
    missing = ServerConfig("gone", StdioServer("/no/such/mcp-server"), timeout_s=5)
    servers = McpServers([missing, stdio()])
    tools = ToolRegistry.builtin()
    try:
        failed = await servers.start(tools)
    finally:
        await servers.close()
    assert failed == {
        "gone": "MCP server 'gone' cannot be reached: cannot start /no/such/mcp-server: "
        "No such file or directory"
    }
    assert "mcp.test.add" in tools


async def test_a_server_that_does_not_answer_is_bounded_by_its_timeout() -> None:
    never = StdioServer(sys.executable, ("-c", "import time; time.sleep(60)"))
    silent = ServerConfig("mute", never, timeout_s=1)
    servers = McpServers([silent])
    begun = time.monotonic()
    try:
        failed = await servers.start(ToolRegistry.builtin())
    finally:
        await servers.close()
    assert failed == {"mute": "MCP server 'mute' did not answer within 1 s (starting)"}
    assert time.monotonic() - begun < 10


def test_unknown_mcp_tool_is_a_validation_error(mcp: NodeRegistry) -> None:
    issues = validate(tool_workflow("mcp.test.nope", {}), mcp, CheckContext())
    assert [(i.code, i.path) for i in issues] == [("invalid_params", "/nodes/1/params/tool")]
    assert "unknown tool 'mcp.test.nope'" in issues[0].message
    assert "mcp.test.add" in issues[0].message


# -- calls through `tool` nodes ---------------------------------------------------------------


async def test_a_tool_node_calls_the_server(mcp: NodeRegistry, tmp_path: Path) -> None:
    assert await result_of(mcp, "mcp.test.add", {"a": 2, "b": 3}, tmp_path) == {"sum": 5}
    assert await result_of(mcp, "mcp.test.echo", {"text": "{{ not a template }}"}, tmp_path) == (
        "{{ not a template }}"
    )


async def test_text_blocks_are_joined_and_others_described(
    mcp: NodeRegistry, tmp_path: Path
) -> None:
    assert await result_of(mcp, "mcp.test.pair", {}, tmp_path) == (
        'first\nsecond\n{"type": "image", "mimeType": "image/png"}'
    )


async def test_args_are_checked_against_the_servers_schema(
    mcp: NodeRegistry, tmp_path: Path
) -> None:
    error = await error_of(mcp, "mcp.test.add", {"a": "two", "b": 3}, tmp_path)
    assert error == "invalid args for tool 'mcp.test.add' at args/a: 'two' is not of type 'number'"


async def test_the_idempotency_key_goes_in_the_requests_meta(
    mcp: NodeRegistry, tmp_path: Path
) -> None:
    assert await result_of(mcp, "mcp.test.key", {}, tmp_path) == "r:t:1"


async def test_is_error_fails_the_node_with_the_servers_text(
    mcp: NodeRegistry, tmp_path: Path
) -> None:
    state = await run_tool(mcp, "mcp.test.fail", {}, tmp_path)
    assert state.status == "failed"
    assert state.error == "MCP tool 'mcp.test.fail' failed: the disk is full"


async def test_a_killed_server_is_started_again(mcp: NodeRegistry, tmp_path: Path) -> None:
    first = (await result_of(mcp, "mcp.test.pid", {}, tmp_path))["pid"]
    os.kill(first, signal.SIGKILL)
    await asyncio.sleep(0.2)  # the connection sees the end of the server's stdout
    second = (await result_of(mcp, "mcp.test.pid", {}, tmp_path))["pid"]
    assert second != first
    assert await result_of(mcp, "mcp.test.add", {"a": 1, "b": 1}, tmp_path) == {"sum": 2}
    # Calls that find the server dead together start one new server between them.
    os.kill(second, signal.SIGKILL)
    await asyncio.sleep(0.2)
    tools = tools_of(mcp)
    assert tools is not None
    pids = await asyncio.gather(
        *(tools.call("mcp.test.pid", {}, idempotency_key=f"r:{i}:1") for i in range(4))
    )
    assert len({answer["pid"] for answer in pids}) == 1
    assert pids[0]["pid"] not in (first, second)


async def test_concurrent_calls_share_one_server(mcp: NodeRegistry) -> None:
    tools = tools_of(mcp)
    assert tools is not None
    begun = time.monotonic()
    answers = await asyncio.gather(
        *(tools.call("mcp.test.slow", {"seconds": 0.5}, idempotency_key=f"r:{i}:1")
          for i in range(5))
    )
    assert answers == ["done"] * 5
    assert time.monotonic() - begun < 2  # side by side, not one after the other
    pids = await asyncio.gather(
        *(tools.call("mcp.test.pid", {}, idempotency_key=f"p:{i}:1") for i in range(3))
    )
    assert len({answer["pid"] for answer in pids}) == 1


async def test_a_call_past_the_timeout_fails_retryably(tmp_path: Path) -> None:
    servers, registry = await started(stdio(timeout_s=1))
    tools = tools_of(registry)
    assert tools is not None
    try:
        with pytest.raises(ToolError) as caught:
            await tools.call("mcp.test.slow", {"seconds": 5}, idempotency_key="r:t:1")
        assert caught.value.detail == "MCP tool 'mcp.test.slow' did not answer within 1 s"
        assert caught.value.retryable
        # The server is still there for the next call.
        assert await result_of(registry, "mcp.test.echo", {"text": "hi"}, tmp_path) == "hi"
    finally:
        await servers.close()


async def test_a_result_past_max_result_bytes_fails(tmp_path: Path) -> None:
    servers, registry = await started(stdio(max_result_bytes=1000))
    try:
        assert len(await result_of(registry, "mcp.test.big", {"n": 1000}, tmp_path)) == 1000
        error = await error_of(registry, "mcp.test.big", {"n": 1001}, tmp_path)
        assert error == (
            "MCP tool 'mcp.test.big' answered 1001 bytes, more than its server's "
            "max_result_bytes (1000)"
        )
    finally:
        await servers.close()


async def test_the_server_gets_no_nodeloom_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_API_TOKEN", "nl_secret")
    monkeypatch.setenv("NODELOOM_DATABASE_URL", "postgresql://user:password@db/nodeloom")
    monkeypatch.setenv("UNRELATED_SECRET", "hidden")
    servers, registry = await started(stdio(env={"GREETING": "hello"}))
    try:
        for name, value in [
            ("NODELOOM_API_TOKEN", None),
            ("NODELOOM_DATABASE_URL", None),
            ("UNRELATED_SECRET", None),
            ("GREETING", "hello"),  # from mcp.toml
            ("PATH", os.environ["PATH"]),  # from the SDK's safe default
        ]:
            answer = await result_of(registry, "mcp.test.env", {"name": name}, tmp_path)
            assert answer == {"value": value}, name
    finally:
        await servers.close()


# -- Streamable HTTP --------------------------------------------------------------------------


@contextlib.contextmanager
def serving_http(port: int) -> Iterator[str]:
    """The test server over Streamable HTTP on ``port``; its URL."""
    process = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)])
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the HTTP MCP server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def http_server() -> Iterator[str]:
    with serving_http(free_port()) as url:
        yield url


async def test_an_http_server_gets_its_headers_from_the_environment(
    http_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_MCP_AUTH", "Bearer abc123")
    config = ServerConfig("web", HttpServer(http_server, {"Authorization": "TEST_MCP_AUTH"}))
    servers, registry = await started(config)
    try:
        assert await result_of(registry, "mcp.web.add", {"a": 2, "b": 3}, tmp_path) == {"sum": 5}
        answer = await result_of(registry, "mcp.web.header", {"name": "authorization"}, tmp_path)
        assert answer == {"value": "Bearer abc123"}
    finally:
        await servers.close()


async def test_an_http_server_that_restarted_is_reached_again(tmp_path: Path) -> None:
    port = free_port()
    with serving_http(port) as url:
        servers, registry = await started(ServerConfig("web", HttpServer(url), timeout_s=5))
        assert await result_of(registry, "mcp.web.add", {"a": 1, "b": 2}, tmp_path) == {"sum": 3}
    try:
        error = await error_of(registry, "mcp.web.add", {"a": 1, "b": 2}, tmp_path)
        assert error.startswith("MCP server 'web' cannot be reached: ")
        with serving_http(port):
            answer = await result_of(registry, "mcp.web.add", {"a": 1, "b": 3}, tmp_path)
            assert answer == {"sum": 4}
    finally:
        await servers.close()


async def test_an_unset_header_variable_is_named() -> None:
    config = ServerConfig(
        "web", HttpServer("http://127.0.0.1:9/mcp", {"Authorization": "NO_SUCH_MCP_VARIABLE"})
    )
    servers = McpServers([config], environ={})
    try:
        failed = await servers.start(ToolRegistry.builtin())
    finally:
        await servers.close()
    assert failed == {
        "web": "MCP server 'web': the environment variable NO_SUCH_MCP_VARIABLE "
        "(header Authorization) is not set"
    }


# -- an agent ---------------------------------------------------------------------------------


SYSTEM_PROMPT = (
    "You add numbers. First call the add tool, then answer with its sum.\n\n"
    "Example\n"
    "Task: What is 12 plus 30?\n"
    'Step 1: {"tool": "mcp.test.add", "args": {"a": 12, "b": 30}}\n'
    'Result: {"sum": 42}\n'
    'Step 2: {"answer": "42"}'
)


async def test_an_agent_of_the_embedded_model_calls_an_mcp_tool(
    mcp: NodeRegistry, embedded_model: Path, tmp_path: Path
) -> None:
    from engine.documents.graph import compile_plan
    from engine.documents.inputs import resolve_inputs
    from engine.models import ModelRegistry, ModelService
    from tests.support.documents import workflow
    from tests.support.engine import new_execution

    models = ModelService(ModelRegistry.load(ROOT / "models"), budget=4 * 1024**3)
    document = workflow(
        [
            {"id": "task", "type": "input", "params": {"name": "task",
                                                        "default": "What is 17 plus 25?"}},
            {"id": "solver", "type": "agent", "params": {
                "model": "gemma-3-270m", "system_prompt": SYSTEM_PROMPT,
                "tools": ["mcp.test.add"], "max_steps": 3, "max_tokens": 64, "temperature": 0,
            }},
        ],
        [("task.value", "solver.task")],
    )
    plan = compile_plan(document, mcp, CheckContext(models=models.names, workspace=tmp_path))
    try:
        execution = new_execution(plan, resolve_inputs(plan, {}), run_id="agent", models=models)
        state = (await execution.execute()).nodes["solver"]
    finally:
        await models.close()
    assert state.status == "succeeded", state.error
    steps = state.output["steps"]  # type: ignore[index]
    calls = [step for step in steps if step.get("tool") == "mcp.test.add"]
    assert calls, json.dumps(steps)
    call = calls[0]
    assert set(call["args"]) == {"a", "b"}  # the grammar made the call fit the schema
    assert call["result"] == {"sum": call["args"]["a"] + call["args"]["b"]}
    assert "answer" in steps[-1]
