"""`/mcp` against a real uvicorn server, through the SDK's own clients: the handshake-era
`ClientSession` over Streamable HTTP and the `Client` that negotiates the current protocol.
Workflows are tools; a call runs the workflow (stored with `trigger: mcp`, rerunnable); bad
arguments are refused with nothing stored; tokens and isolation are the REST API's."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from litestar.testing import AsyncTestClient
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from server.app import create_app
from server.mcp import RUN_ID_META, tool_name
from tests.support.accounts import tokens_for
from tests.support.api import GREETING, LiveServer, make_config
from tests.support.documents import ROOT
from tests.support.nodes import api_test_registry

FAILING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Always fails",
    "description": "A workflow whose only node fails.",
    "nodes": [
        {"id": "broken", "type": "flaky", "params": {"failures": 1000, "retryable": False}},
        {"id": "out", "type": "output", "params": {"name": "out"}},
    ],
    "edges": [{"from": "broken.y", "to": "out.value"}],
}
REQUIRED: dict[str, Any] = {
    **GREETING,
    "name": "Greet someone!",
    "nodes": [
        {"id": "name", "type": "input", "params": {"name": "name", "schema": {"type": "string"}}},
        *GREETING["nodes"][1:],
    ],
}


async def save(server: LiveServer, document: dict[str, Any], token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/api/workflows", json=document, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@contextlib.asynccontextmanager
async def handshake_session(url: str, token: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def runs_of(server: LiveServer) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/api/runs", params={"limit": 200})
    return list(response.json()["items"])


async def test_workflows_are_tools_and_a_call_is_a_stored_run(live_server: LiveServer) -> None:
    greeting = await save(live_server, GREETING)
    required = await save(live_server, REQUIRED)
    async with handshake_session(live_server.url) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert tool_name(greeting, "Greeting") == f"greeting-{greeting.removeprefix('wf_')}"
        tool = tools[tool_name(greeting, "Greeting")]
        assert tool.input_schema == {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": [],
            "additionalProperties": False,
        }
        assert tools[tool_name(required, "Greet someone!")].input_schema["required"] == ["name"]
        assert tool_name(required, "Greet someone!").startswith("greet_someone-")

        result = await session.call_tool(tool.name, {"name": "Ada"})
    assert not result.is_error
    assert result.structured_content == {"greeting": "Hello, Ada!"}
    assert result.content[0].type == "text"
    assert result.content[0].text == '{"greeting":"Hello, Ada!"}'
    run_id = result.meta[RUN_ID_META] if result.meta else None

    async with httpx.AsyncClient(base_url=live_server.url) as http:
        run = (await http.get(f"/api/runs/{run_id}")).json()
        assert (run["trigger"], run["status"]) == ("mcp", "succeeded")
        assert run["workflow_id"] == greeting
        rerun = {"inputs": {"name": "Bob"}, "wait": True}
        child = (await http.post(f"/api/runs/{run_id}/rerun", json=rerun)).json()
    assert (child["parent_run_id"], child["outputs"]) == (run_id, {"greeting": "Hello, Bob!"})
    assert child["trigger"] == "api"


async def test_bad_calls_are_refused_and_store_nothing(live_server: LiveServer) -> None:
    required = tool_name(await save(live_server, REQUIRED), "Greet someone!")
    before = len(await runs_of(live_server))
    async with Client(f"{live_server.url}/mcp") as client:
        wrong_type = await client.call_tool(required, {"name": 5})
        assert wrong_type.is_error
        assert "invalid arguments" in wrong_type.content[0].text  # type: ignore[union-attr]
        assert "'name'" in wrong_type.content[0].text  # type: ignore[union-attr]
        missing = await client.call_tool(required, {})
        assert missing.is_error
        assert "required" in missing.content[0].text  # type: ignore[union-attr]
        unknown = await client.call_tool(required, {"name": "Ada", "age": 3})
        assert "unknown input 'age'" in unknown.content[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("nothing-0123", {})
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("renamed" + required[required.index("-") :], {"name": "x"})
    assert len(await runs_of(live_server)) == before


async def test_a_failed_run_is_an_error_and_progress_is_reported(
    live_server: LiveServer,
) -> None:
    failing = tool_name(await save(live_server, FAILING), "Always fails")
    greeting = tool_name(await save(live_server, GREETING), "Greeting")
    heard: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append((done, total, message))

    async with Client(f"{live_server.url}/mcp") as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert listed[failing].description == "A workflow whose only node fails."
        failed = await client.call_tool(failing, {})
        assert failed.is_error
        assert "failed" in failed.content[0].text  # type: ignore[union-attr]
        assert "attempt 1 failed" in failed.content[0].text  # type: ignore[union-attr]
        done = await client.call_tool(greeting, {"name": "Cy"}, progress_callback=progress)
    assert done.structured_content == {"greeting": "Hello, Cy!"}
    assert [(step, total) for step, total, _ in heard] == [(1, 3), (2, 3), (3, 3)]
    assert heard[0][2] == "name succeeded"


async def test_tokens_and_isolation(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/mcp.db"
    ada, bob = await tokens_for(url, "ada", "bob")
    app = create_app(make_config(tmp_path, url), registry=api_test_registry())
    with LiveServer(app, url) as server:
        mine = tool_name(await save(server, GREETING, ada), "Greeting")
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"{server.url}/mcp", json={})).status_code == 401
        with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK wraps the 401 its own way
            async with handshake_session(server.url):
                pass
        async with handshake_session(server.url, ada) as session:
            assert [tool.name for tool in (await session.list_tools()).tools] == [mine]
            result = await session.call_tool(mine, {"name": "Ada"})
            assert result.structured_content == {"greeting": "Hello, Ada!"}
        async with handshake_session(server.url, bob) as session:
            assert (await session.list_tools()).tools == []
            with pytest.raises(MCPError, match="unknown tool"):
                await session.call_tool(mine, {"name": "Bob"})


async def test_mcp_servers_tools_in_the_catalogue_and_in_runs(tmp_path: Path) -> None:
    config = tmp_path / "mcp.toml"
    config.write_text(
        "[servers.test]\n"
        f'command = "{sys.executable}"\n'
        f'args = ["{ROOT / "tests" / "support" / "mcp_server.py"}"]\n'
        "[servers.gone]\n"
        'command = "/nonexistent/mcp-server"\n'
    )
    url = f"sqlite+aiosqlite:///{tmp_path}/tools.db"
    app = create_app(
        make_config(tmp_path, url, mcp_config=config), registry=api_test_registry()
    )
    async with AsyncTestClient(app=app) as client:
        listed = (await client.get("/api/tools")).json()
        tools = {tool["name"]: tool for tool in listed["items"]}
        assert tools["mcp.test.add"]["source"] == "mcp:test"
        assert tools["mcp.test.add"]["schema"]["required"] == ["a", "b"]
        assert tools["calculator"]["source"] == "builtin"
        assert list(listed["unreachable"]) == ["gone"]
        adding = {
            "schema_version": 1,
            "name": "Adds",
            "nodes": [
                {"id": "args", "type": "input", "params": {"name": "args"}},
                {"id": "add", "type": "tool", "params": {"tool": "mcp.test.add"}},
                {"id": "sum", "type": "output", "params": {"name": "sum"}},
            ],
            "edges": [
                {"from": "args.value", "to": "add.args"},
                {"from": "add.result", "to": "sum.value"},
            ],
        }
        saved = await client.post("/api/workflows", json=adding)
        run = await client.post(
            f"/api/workflows/{saved.json()['id']}/runs",
            json={"inputs": {"args": {"a": 2, "b": 3}}, "wait": True},
        )
        assert run.json()["outputs"] == {"sum": {"sum": 5}}
        gone = {"id": "add", "type": "tool", "params": {"tool": "mcp.gone.add"}}
        unknown = {**adding, "nodes": [adding["nodes"][0], gone, adding["nodes"][2]]}
        draft = await client.post("/api/workflows", json=unknown)  # saved, with its issue
        assert draft.status_code == 201
        assert "mcp.gone.add" in str(draft.json()["issues"])
        refused = await client.post(f"/api/workflows/{draft.json()['id']}/runs", json={})
        assert refused.status_code == 422
        assert "mcp.gone.add" in refused.text
