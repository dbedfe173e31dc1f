"""Chatting through the OpenAI-compatible door with the official `openai` client against a real
server: the embedded model (real llama-cpp-python generation) as ``model:``, a saved agent, saved
workflows; sampling options, streaming, usage and cost; a fallback from a model whose server is
down; bad requests that store nothing. Answers are kept short (the model is shared, 2 cores)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from server.app import create_app
from tests.support.api import GREETING, LiveServer, make_config
from tests.support.network import free_port
from tests.support.nodes import api_test_registry

MODEL = "model:gemma-3-270m"
PRICE_IN, PRICE_OUT = 1.5, 4.0
# The earlier turn carries the name; the embedded base model repeats it at temperature 0.
NAMED = [
    {"role": "user", "content": "My name is Zorblat."},
    {"role": "assistant", "content": "Nice to meet you, Zorblat."},
    {"role": "user", "content": "What is my name?"},
]
SAME = {"temperature": 0, "seed": 7}


def registry(model: Path) -> str:
    return f"""
[models.gemma-3-270m]
provider = "llama_cpp"
path = "{model}"
n_ctx = 2048
price_in = {PRICE_IN}
price_out = {PRICE_OUT}

[models.gemma-small]
provider = "llama_cpp"
path = "{model}"
n_ctx = 256

[models.down]
provider = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"
model = "nothing-listens-here"
max_retries = 0
timeout_s = 5
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedded_model: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("chat")
    url = f"sqlite+aiosqlite:///{root}/chat.db"
    config = make_config(root, url)
    (root / "models" / "models.toml").write_text(registry(embedded_model))
    with LiveServer(create_app(config, registry=api_test_registry()), url) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}{path}", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def run_of(server: LiveServer, completion_id: str) -> dict[str, Any]:
    run_id = completion_id.removeprefix("chatcmpl-")
    return dict(httpx.get(f"{server.url}/api/runs/{run_id}", timeout=30).json())


def run_count(server: LiveServer) -> int:
    return len(httpx.get(f"{server.url}/api/runs?limit=200", timeout=30).json()["items"])


def test_a_conversation_is_answered_from_an_earlier_turn(
    server: LiveServer, client: openai.OpenAI
) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=NAMED, **SAME)
    answer = completion.choices[0].message.content or ""
    assert "Zorblat" in answer
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 20
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    extra = usage.model_extra or {}
    assert extra["model"] == "gemma-3-270m"
    expected = (usage.prompt_tokens * PRICE_IN + usage.completion_tokens * PRICE_OUT) / 1e6
    assert extra["cost"] == pytest.approx(expected)
    run = run_of(server, completion.id)
    assert run["trigger"] == "api"
    assert run["status"] == "succeeded"
    assert run["inputs"]["messages"] == NAMED
    # Without the earlier turns the name is nowhere to be found.
    alone = client.chat.completions.create(model=MODEL, messages=NAMED[-1:], **SAME)
    assert "Zorblat" not in (alone.choices[0].message.content or "")


def test_max_tokens_and_stop(client: openai.OpenAI) -> None:
    short = client.chat.completions.create(model=MODEL, messages=NAMED, max_tokens=2, **SAME)
    assert short.usage is not None
    assert short.usage.completion_tokens <= 2
    assert short.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(model=MODEL, messages=NAMED, stop=["Zorblat"], **SAME)
    assert "Zorblat" not in (stopped.choices[0].message.content or "")


def test_streamed_answer_is_the_answer_with_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=NAMED, max_tokens=12, **SAME)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=NAMED,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
            **SAME,
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}},
        "required": ["name"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model=MODEL,
        messages=NAMED,
        response_format={"type": "json_schema", "json_schema": {"name": "who", "schema": schema}},
        max_tokens=40,
        **SAME,
    )
    value = json.loads(completion.choices[0].message.content or "")
    assert isinstance(value, dict)
    assert isinstance(value["name"], str)


def test_agent_takes_the_conversation_as_context(server: LiveServer, client: openai.OpenAI) -> None:
    agent = post(
        server,
        "/api/agents",
        {"name": "Namer", "model": "gemma-3-270m", "max_steps": 1, "description": "says names"},
    )
    assert f"agent:{agent['id']}" in [m.id for m in client.models.list()]
    completion = client.chat.completions.create(
        model=f"agent:{agent['id']}",
        messages=NAMED,
        max_tokens=40,
        **SAME,
    )
    assert completion.choices[0].message.content
    alone = client.chat.completions.create(
        model=f"agent:{agent['id']}",
        messages=NAMED[-1:],
        max_tokens=40,
        **SAME,
    )
    # The earlier turns are in the agent's prompt.
    assert completion.usage.prompt_tokens > alone.usage.prompt_tokens + 10
    run = run_of(server, completion.id)
    assert run["nodes"]["answer"]["usage"]["model"] == "gemma-3-270m"


def test_workflow_targets(server: LiveServer, client: openai.OpenAI) -> None:
    greeting = post(server, "/api/workflows", GREETING)["id"]
    listed = [m.id for m in client.models.list()]
    assert f"workflow:{greeting}" in listed
    assert MODEL in listed
    assert "model:down" in listed
    last = client.chat.completions.create(
        model=f"workflow:{greeting}", messages=[*NAMED[:2], {"role": "user", "content": "Ada"}]
    )
    assert last.choices[0].message.content == "Hello, Ada!"
    counting = {
        "schema_version": 1,
        "name": "Counts turns",
        "nodes": [
            {"id": "messages", "type": "input",
             "params": {"name": "messages", "schema": {"type": "array"}}},
            {"id": "count", "type": "template",
             "params": {"template": "{{ messages | length }}: {{ messages[0].content }}"}},
            {"id": "out", "type": "output", "params": {"name": "out"}},
        ],
        "edges": [
            {"from": "messages.value", "to": "count.messages"},
            {"from": "count.text", "to": "out.value"},
        ],
    }  # fmt: skip
    turns = post(server, "/api/workflows", counting)["id"]
    whole = client.chat.completions.create(model=f"workflow:{turns}", messages=NAMED)
    assert whole.choices[0].message.content == "3: My name is Zorblat."


def test_fallback_from_a_model_whose_server_is_down(
    server: LiveServer, client: openai.OpenAI
) -> None:
    document = {
        "schema_version": 1,
        "name": "Falls back",
        "nodes": [
            {"id": "messages", "type": "input",
             "params": {"name": "messages", "schema": {"type": "array"}}},
            {"id": "ask", "type": "llm",
             "params": {"model": "down", "fallbacks": ["gemma-3-270m"], "temperature": 0,
                        "seed": 7, "max_tokens": 12}},
            {"id": "out", "type": "output", "params": {"name": "out"}},
        ],
        "edges": [
            {"from": "messages.value", "to": "ask.messages"},
            {"from": "ask.text", "to": "out.value"},
        ],
    }  # fmt: skip
    workflow_id = post(server, "/api/workflows", document)["id"]
    completion = client.chat.completions.create(model=f"workflow:{workflow_id}", messages=NAMED)
    assert "Zorblat" in (completion.choices[0].message.content or "")
    assert (completion.usage.model_extra or {})["model"] == "gemma-3-270m"
    node = run_of(server, completion.id)["nodes"]["ask"]
    assert node["reason_code"] == "fallback"
    assert node["reason"].startswith("fallback: gemma-3-270m after model down: cannot connect")


def test_bad_requests_store_nothing(server: LiveServer, client: openai.OpenAI) -> None:
    before = run_count(server)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="model:nope", messages=NAMED)
    assert unknown.value.code == "model_not_found"
    assert "model:nope" in unknown.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="agent:ag_missing", messages=NAMED)
    with pytest.raises(openai.BadRequestError, match="messages is empty"):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError, match="no user message"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens 4096 is more than model"):
        client.chat.completions.create(model=MODEL, messages=NAMED, max_tokens=4096)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=NAMED, temperature=5)
    assert run_count(server) == before


def test_usage_counts_the_chats_with_their_cost(server: LiveServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=NAMED, max_tokens=2, **SAME)
    rows = httpx.get(f"{server.url}/api/usage", params={"group_by": "model"}, timeout=30).json()
    gemma = next(row for row in rows["rows"] if row["key"] == "gemma-3-270m")
    assert gemma["runs"] >= 1
    assert gemma["prompt_tokens"] > 0
    expected = (gemma["prompt_tokens"] * PRICE_IN + gemma["completion_tokens"] * PRICE_OUT) / 1e6
    assert gemma["cost"] == pytest.approx(expected)
    by_workflow = httpx.get(f"{server.url}/api/usage", params={"group_by": "workflow"}).json()
    assert MODEL in [row["key"] for row in by_workflow["rows"]]


def test_a_long_conversation_is_cut_to_the_models_context(client: openai.OpenAI) -> None:
    """40 turns (~600 tokens) with a model of 256: the oldest go, the system message and the
    question stay, the answer fits (uncut, the prompt alone would be refused)."""
    history = [{"role": "system", "content": "The assistant remembers names."}]
    for n in range(20):
        history += [
            {"role": "user", "content": f"Turn {n}: the weather is mild and the sea is calm."},
            {"role": "assistant", "content": f"Noted for turn {n}: mild weather, a calm sea."},
        ]
    history.append({"role": "user", "content": "What did I say about the sea?"})
    completion = client.chat.completions.create(
        model="model:gemma-small", messages=history, max_tokens=8, **SAME
    )
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens + 8 <= 256
    assert usage.prompt_tokens > 150  # as much of the history as fits, not only the question
    with pytest.raises(openai.BadRequestError, match="its context is 256 tokens"):
        client.chat.completions.create(model="model:gemma-small", messages=NAMED, max_tokens=256)
