"""The ``openai`` provider: against a real OpenAI-compatible server (``python -m llama_cpp.server``
serving the embedded GGUF on a loopback port), and, for the failures a real server will not
produce on demand (429, 500, a malformed stream), against httpx's `MockTransport`; a server that
hangs is a real socket that never answers. The server tests run one request at a time (2 cores)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from engine.documents.document import from_builtins
from engine.documents.graph import compile_plan
from engine.documents.inputs import resolve_inputs
from engine.execution.events import AnyEvent, NodeCompleted, NodeToken
from engine.models import ModelError, ModelRegistry, ModelService
from engine.models.base import GenerationRequest
from engine.models.conversation import Message
from engine.models.registry import OpenAIConfig
from engine.nodes.types import CheckContext
from tests.support.documents import ROOT, workflow
from tests.support.engine import builtin_registry, new_execution
from tests.support.prompts import FEW_SHOT, PERSON

EXTRACT = "Ada Lovelace died in 1852 at the age of 36.\nJSON with her name and age:"
KEY_ENV = "NODELOOM_TEST_SERVER_KEY"


# -- a real server ---------------------------------------------------------------------------


class Server:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key

    def registry(self, directory: Path) -> ModelRegistry:
        """Two entries on this server: the completions endpoint (a base model: plain prompts,
        a GBNF grammar for schemas) and the chat endpoint (``json_object`` with a schema, what
        llama-cpp-python's server honours; it answers ``json_schema`` with a 500)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "models.toml").write_text(
            f'[models.server]\nprovider = "openai"\nbase_url = "{self.base_url}"\n'
            f'model = "gemma"\napi_key_env = "{KEY_ENV}"\nendpoint = "completions"\n'
            'structured_output = "grammar"\ntimeout_s = 30\n'
            f'[models.server-chat]\nprovider = "openai"\nbase_url = "{self.base_url}"\n'
            f'model = "gemma"\napi_key_env = "{KEY_ENV}"\nstructured_output = "json_object"\n'
            "timeout_s = 30\n"
        )
        return ModelRegistry.load(directory)

    def service(self, directory: Path) -> ModelService:
        return ModelService(self.registry(directory), budget=1024**3, environ={KEY_ENV: self.key})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m llama_cpp.server`` on a free loopback port, with an API key. Module-scoped,
    not session-scoped: it holds ~800 MB and its threads share the 2 cores, so it is gone before
    the other model tests run."""
    port = free_port()
    key = "sk-test-" + secrets.token_hex(8)
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model),
        "--host", "127.0.0.1", "--port", str(port), "--model_alias", "gemma",
        "--n_ctx", "1024", "--n_threads", str(min(2, os.cpu_count() or 1)),
        "--api_key", key, "--verbose", "False",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(
                    f"{base_url}/models", headers={"Authorization": f"Bearer {key}"}, timeout=2
                )
                if answer.status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield Server(base_url, key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def server_models(server: Server, tmp_path: Path) -> AsyncIterator[ModelService]:
    service = server.service(tmp_path / "models")
    yield service
    await service.close()


async def test_tokens_stream_from_the_server_before_the_answer_ends(
    server_models: ModelService,
) -> None:
    arrivals: list[tuple[float, str]] = []
    request = GenerationRequest(prompt=FEW_SHOT, temperature=0, max_tokens=16)
    completion = await server_models.generate(
        "server", request, lambda text: arrivals.append((time.perf_counter(), text))
    )
    ended = time.perf_counter()
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == 16
    assert len(arrivals) >= 8
    assert "".join(text for _, text in arrivals) == completion.text
    assert completion.text.startswith(" Rome")
    # The pieces arrive spread over the generation (~30 ms a token), not together at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.1
    assert ended - arrivals[0][0] > 0.1
    assert completion.first_token_s is not None
    assert completion.first_token_s < completion.duration_s
    again = await server_models.generate("server", request, lambda _: None)
    assert again.text == completion.text  # temperature 0: the same text


async def test_structured_output_from_the_server(server_models: ModelService) -> None:
    request = GenerationRequest(
        prompt=EXTRACT, temperature=0, max_tokens=40, response_schema=PERSON
    )
    for name in ("server", "server-chat"):  # a grammar, and json_object with the schema
        completion = await server_models.generate(name, request, lambda _: None)
        value = json.loads(completion.text)
        jsonschema.validate(value, PERSON)
        assert value["age"] == 36, name


async def test_cancelling_mid_stream_closes_the_request(server_models: ModelService) -> None:
    pieces: list[str] = []
    streaming = asyncio.Event()

    def on_text(text: str) -> None:
        pieces.append(text)
        if len(pieces) >= 5:
            streaming.set()

    request = GenerationRequest(prompt="1, 2, 3,", temperature=0, max_tokens=600)
    task = asyncio.create_task(server_models.generate("server", request, on_text))
    await asyncio.wait_for(streaming.wait(), timeout=60)
    cancelled_at = time.perf_counter()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert time.perf_counter() - cancelled_at < 1.0
    assert task.cancelled()
    received = len(pieces)
    await asyncio.sleep(0.3)
    assert len(pieces) == received  # nothing more arrives
    # The server serves the next request, without first finishing the 600 tokens.
    started = time.perf_counter()
    answer = await server_models.generate(
        "server",
        GenerationRequest(prompt=FEW_SHOT, temperature=0, max_tokens=4, stop=("\n",)),
        lambda _: None,
    )
    assert answer.text.strip() == "Rome"
    assert time.perf_counter() - started < 10


async def test_an_llm_node_runs_on_the_server(server_models: ModelService) -> None:
    events: list[AnyEvent] = []
    nodes = [
        {"id": "ask", "type": "input", "params": {"name": "ask", "default": FEW_SHOT}},
        {
            "id": "write",
            "type": "llm",
            "params": {"model": "server", "temperature": 0, "max_tokens": 6, "stop": ["\n"]},
        },
        {"id": "out", "type": "output", "params": {"name": "text"}},
    ]
    plan = compile_plan(
        workflow(nodes, [("ask.value", "write.prompt"), ("write.text", "out.value")]),
        builtin_registry(),
        CheckContext(models=server_models.names),
    )
    result = await new_execution(
        plan,
        resolve_inputs(plan, {}),
        run_id="run_server",
        listeners=[events.append],
        models=server_models,
    ).execute()
    assert result.status == "succeeded", result.nodes["write"].error
    assert result.outputs["text"] == " Rome"
    tokens = [e for e in events if isinstance(e, NodeToken) and e.node == "write"]
    completed = next(e for e in events if isinstance(e, NodeCompleted) and e.node == "write")
    assert tokens
    assert all(token.seq < completed.seq for token in tokens)
    assert "".join(token.text for token in tokens) == " Rome"
    assert completed.usage is not None
    assert completed.usage["completion_tokens"] >= 1


async def test_the_server_refuses_a_wrong_key(server: Server, tmp_path: Path) -> None:
    service = ModelService(
        server.registry(tmp_path / "models"), budget=1024**3, environ={KEY_ENV: "sk-wrong-key"}
    )
    try:
        with pytest.raises(ModelError) as caught:
            await service.generate("server", GenerationRequest(prompt="Hi"), lambda _: None)
    finally:
        await service.close()
    assert "answered 401" in caught.value.detail
    assert "sk-wrong-key" not in caught.value.detail


async def test_an_agent_runs_on_the_server(server_models: ModelService) -> None:
    """The shipped agent example, its steps constrained by the server's structured output."""
    document = json.loads((ROOT / "workflows" / "agent-calculator.json").read_text())
    for node in document["nodes"]:
        if node["type"] == "agent":
            node["params"]["model"] = "server"
    plan = compile_plan(
        from_builtins(document), builtin_registry(), CheckContext(models=server_models.names)
    )
    result = await new_execution(
        plan, resolve_inputs(plan, {}), run_id="run_agent", models=server_models
    ).execute()
    assert result.status == "succeeded", result.nodes["solver"].error
    steps = result.outputs["steps"]
    assert steps[0]["tool"] == "calculator"
    assert steps[0]["result"] == 408
    assert "408" in result.outputs["answer"]


async def test_discover_lists_and_adds_the_servers_models(server: Server, tmp_path: Path) -> None:
    """``nodeloom models discover`` against the real server: its models listed, one added to a
    new registry (beside the embedded default), which then answers a conversation."""
    env = {**os.environ, "NODELOOM_MODELS_DIR": str(tmp_path / "models"), KEY_ENV: server.key}

    def nodeloom(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "server.cli", "models", "discover", server.base_url]
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60,
            check=False,
        )  # fmt: skip

    listed = nodeloom("--api-key-env", KEY_ENV)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["gemma"]
    refused = nodeloom()
    assert refused.returncode == 1
    assert "answered 401" in refused.stderr
    assert nodeloom("--api-key-env", "NODELOOM_TEST_NOT_SET").returncode == 1
    assert "does not offer 'nope'" in nodeloom("--api-key-env", KEY_ENV, "--add", "nope").stderr
    assert not (tmp_path / "models" / "models.toml").exists()
    added = nodeloom("--api-key-env", KEY_ENV, "--add", "gemma")
    assert added.returncode == 0, added.stderr
    assert "added model gemma (gemma)" in added.stdout
    again = nodeloom("--api-key-env", KEY_ENV, "--add", "gemma")
    assert again.returncode == 1
    assert "already has a model 'gemma'" in again.stderr
    registry = ModelRegistry.load(tmp_path / "models")
    assert sorted(registry.names) == ["gemma", "gemma-3-270m"]
    config = registry.get("gemma")
    assert isinstance(config, OpenAIConfig)
    assert (config.base_url, config.api_key_env) == (server.base_url, KEY_ENV)
    assert config.model == "gemma"
    service = ModelService(registry, budget=1024**3, environ={KEY_ENV: server.key})
    try:
        request = GenerationRequest(
            prompt="",
            messages=(Message("user", "Say hello."),),
            temperature=0,
            max_tokens=4,
        )
        completion = await service.generate("gemma", request, lambda _: None)
    finally:
        await service.close()
    # Answered with the key from the variable the entry names (a base model may end at once).
    assert completion.finish_reason in ("stop", "length")
    assert completion.completion_tokens <= 4
