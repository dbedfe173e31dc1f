"""End to end against a real uvicorn server: the OpenAI-compatible front door through the official
`openai` client, and live events through httpx with the latency of the first token."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from engine.documents.document import from_builtins
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.api import GREETING, LiveServer, parse
from tests.support.nodes import Ticker, api_test_registry

STREAMING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Streaming",
    "nodes": [
        {
            "id": "prompt",
            "type": "input",
            "params": {"name": "prompt", "schema": {"type": "string"}},
        },
        {"id": "gen", "type": "ticker", "params": {"count": 5, "pause_s": 0.05}},
        {"id": "answer", "type": "output", "params": {"name": "answer"}},
    ],
    "edges": [
        {"from": "prompt.value", "to": "gen.prompt"},
        {"from": "gen.text", "to": "answer.value"},
    ],
}


def save(server: LiveServer, document: dict[str, Any]) -> str:
    response = httpx.post(f"{server.url}/api/workflows", json=document)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0)


def test_models_and_chat_completion(live_server: LiveServer, client: openai.OpenAI) -> None:
    workflow_id = save(live_server, GREETING)
    assert f"workflow:{workflow_id}" in [model.id for model in client.models.list()]
    completion = client.chat.completions.create(
        model=f"workflow:{workflow_id}",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "Hello, first!"},
            {"role": "user", "content": "Ada"},
        ],
    )
    assert completion.choices[0].message.content == "Hello, Ada!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None


def test_streamed_completion(live_server: LiveServer, client: openai.OpenAI) -> None:
    workflow_id = save(live_server, STREAMING)
    stream = client.chat.completions.create(
        model=f"workflow:{workflow_id}",
        messages=[{"role": "user", "content": "go"}],
        stream=True,
    )
    chunks = list(stream)
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices[0].delta.content]
    assert pieces == ["tick0 ", "tick1 ", "tick2 ", "tick3 ", "tick4 "]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_front_door_errors(live_server: LiveServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="workflow:wf_missing", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    workflow_id = save(live_server, GREETING)
    with pytest.raises(openai.BadRequestError, match="no user message"):
        client.chat.completions.create(
            model=f"workflow:{workflow_id}", messages=[{"role": "system", "content": "x"}]
        )


def test_tokens_reach_an_sse_client_as_they_are_generated(live_server: LiveServer) -> None:
    """Each token reaches the client before the next one is generated (0.3 s later): streamed
    live, not held until the node or the run ends. (Latency figures are for benchmarks: this
    test asserts no absolute time beyond the pause between tokens.)"""
    document = {**STREAMING, "nodes": [
        {**node, "params": {**node["params"], "pause_s": 0.3}} if node["id"] == "gen" else node
        for node in STREAMING["nodes"]
    ]}
    workflow_id = save(live_server, document)
    received: list[float] = []
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        run = http.post(f"/api/workflows/{workflow_id}/runs", json={"inputs": {"prompt": "p"}})
        run_id = run.json()["id"]
        body = []
        with http.stream("GET", f"/api/runs/{run_id}/events") as response:
            for line in response.iter_lines():
                if line.startswith("event: node.token"):
                    received.append(time.perf_counter())
                body.append(line)
    frames = parse("\n".join(body))
    assert frames[-1]["event"] == "run.finished"
    generated = Ticker.emitted[run_id]
    assert len(received) == len(generated) == 5
    for index in range(len(generated) - 1):
        assert received[index] < generated[index + 1], f"token {index} arrived late"


def test_many_watchers_of_one_run(live_server: LiveServer) -> None:
    workflow_id = save(live_server, STREAMING)
    run_id = httpx.post(
        f"{live_server.url}/api/workflows/{workflow_id}/runs", json={"inputs": {"prompt": "p"}}
    ).json()["id"]
    results: list[list[dict[str, Any]]] = []

    def watch() -> None:
        with httpx.stream("GET", f"{live_server.url}/api/runs/{run_id}/events", timeout=10) as r:
            results.append(parse(r.read().decode()))

    watchers = [threading.Thread(target=watch) for _ in range(4)]
    for thread in watchers:
        thread.start()
    for thread in watchers:
        thread.join(timeout=15)
    assert len(results) == 4
    for frames in results:
        assert [f["event"] for f in frames].count("node.token") == 5
        assert frames[-1]["event"] == "run.finished"


async def test_run_of_another_process_is_followed(live_server: LiveServer, tmp_path: Path) -> None:
    """A run executing elsewhere (here: another run service on the server's database, as a
    worker would be) has no live channel in the server: its stored events are followed."""
    database = await Database.connect(live_server.database_url)
    worker = RunService(database, api_test_registry(), workspace=tmp_path)
    try:
        active = await worker.start(from_builtins(STREAMING), {"prompt": "p"})
        async with (
            httpx.AsyncClient(base_url=live_server.url, timeout=10) as http,
            http.stream("GET", f"/api/runs/{active.id}/events") as response,
        ):
            frames = parse((await response.aread()).decode())
        assert frames[-1]["event"] == "run.finished"
        assert [f["event"] for f in frames].count("node.token") == 5
    finally:
        await worker.close()
        await database.close()
