"""The `llm` node with the embedded model, through the executor: real generation by
llama-cpp-python, no fakes. The tests share one loaded model (a module-scoped event loop) and keep
answers short; they must not run beside other CPU-heavy work (llama.cpp spin-waits on 2 cores)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from engine.documents.graph import compile_plan
from engine.documents.inputs import resolve_inputs
from engine.execution.events import AnyEvent, NodeCompleted, NodeToken
from engine.execution.results import RunResult
from engine.models import ModelRegistry, ModelService
from engine.nodes.types import CheckContext
from tests.support.documents import ROOT, workflow
from tests.support.engine import builtin_registry, new_execution
from tests.support.prompts import FEW_SHOT, PERSON

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def models(embedded_model: Path) -> AsyncIterator[ModelService]:
    service = ModelService(ModelRegistry.load(ROOT / "models"), budget=4 * 1024**3)
    yield service
    await service.close()


async def run_llm(
    models: ModelService,
    prompt: str,
    events: list[AnyEvent] | None = None,
    system: str | None = None,
    **params: Any,
) -> RunResult:
    """``prompt`` (and ``system``) → an `llm` node ``write`` with ``params`` → outputs."""
    nodes = [
        {"id": "ask", "type": "input", "params": {"name": "ask", "default": prompt}},
        {"id": "write", "type": "llm", "params": params},
        {"id": "out", "type": "output", "params": {"name": "text"}},
    ]
    edges = [("ask.value", "write.prompt"), ("write.text", "out.value")]
    if system is not None:
        nodes.append({"id": "sys", "type": "input", "params": {"name": "sys", "default": system}})
        edges.append(("sys.value", "write.system"))
    plan = compile_plan(
        workflow(nodes, edges), builtin_registry(), CheckContext(models=models.names)
    )
    execution = new_execution(
        plan,
        resolve_inputs(plan, {}),
        run_id="run_llm",
        listeners=[events.append] if events is not None else [],
        models=models,
    )
    return await execution.execute()


async def test_same_text_at_temperature_zero(models: ModelService) -> None:
    first = await run_llm(models, FEW_SHOT, temperature=0, max_tokens=8, stop=["\n"])
    second = await run_llm(models, FEW_SHOT, temperature=0, max_tokens=8, stop=["\n"])
    assert first.status == "succeeded", first.nodes["write"].error
    text = first.outputs["text"]
    assert isinstance(text, str)
    assert text.strip()
    assert "\n" not in text  # cut at the stop sequence
    assert second.outputs["text"] == text
    usage = first.nodes["write"].usage
    assert usage is not None
    assert usage["prompt_tokens"] > 20
    assert 1 <= usage["completion_tokens"] <= 8
    assert first.nodes["write"].output == {"text": text, "usage": usage}


async def test_same_text_with_a_seed(models: ModelService) -> None:
    prompt = "Once upon a time"
    one = await run_llm(models, prompt, temperature=1.0, seed=7, max_tokens=8)
    two = await run_llm(models, prompt, temperature=1.0, seed=7, max_tokens=8)
    assert one.status == "succeeded", one.nodes["write"].error
    assert one.outputs["text"] == two.outputs["text"]


async def test_tokens_stream_before_the_node_completes(models: ModelService) -> None:
    events: list[AnyEvent] = []
    result = await run_llm(
        models, "The three primary colours are", events, temperature=0, max_tokens=12
    )
    assert result.status == "succeeded", result.nodes["write"].error
    tokens = [e for e in events if isinstance(e, NodeToken) and e.node == "write"]
    completed = next(e for e in events if isinstance(e, NodeCompleted) and e.node == "write")
    assert len(tokens) >= 2
    assert all(token.seq < completed.seq for token in tokens)
    assert "".join(token.text for token in tokens) == result.outputs["text"]
    assert completed.usage == {"prompt_tokens": 6, "completion_tokens": 12, "model": "gemma-3-270m"}


async def test_system_text_comes_before_the_prompt(models: ModelService) -> None:
    result = await run_llm(
        models,
        "Q: What is the capital of Italy?\nA:",
        events=None,
        system="Answer in one word.",
        temperature=0,
        max_tokens=4,
    )
    assert result.status == "succeeded", result.nodes["write"].error
    usage = result.nodes["write"].usage
    alone = await run_llm(
        models, "Q: What is the capital of Italy?\nA:", temperature=0, max_tokens=4
    )
    assert usage is not None
    assert alone.nodes["write"].usage is not None
    assert usage["prompt_tokens"] > alone.nodes["write"].usage["prompt_tokens"]


async def test_response_schema_gives_json_valid_against_it(models: ModelService) -> None:
    result = await run_llm(
        models,
        "Ada Lovelace died in 1852 at the age of 36.\nJSON with her name and age:",
        temperature=0,
        max_tokens=40,
        response_schema=PERSON,
    )
    assert result.status == "succeeded", result.nodes["write"].error
    output = result.nodes["write"].output
    assert output is not None
    jsonschema.validate(output["json"], PERSON)
    assert json.loads(output["text"]) == output["json"]
    assert output["json"]["age"] == 36


async def test_cut_off_json_fails_the_node_clearly(models: ModelService) -> None:
    result = await run_llm(
        models, "JSON for a person:", temperature=0, max_tokens=3, response_schema=PERSON
    )
    assert result.status == "failed"
    error = result.nodes["write"].error or ""
    assert error.startswith("the answer is not valid JSON (the answer was cut off at max_tokens=3)")


async def test_cancelling_stops_generation_within_a_second(models: ModelService) -> None:
    events: list[AnyEvent] = []
    streaming = asyncio.Event()

    def listen(event: AnyEvent) -> None:
        events.append(event)
        if sum(isinstance(e, NodeToken) for e in events) >= 5:
            streaming.set()

    plan = compile_plan(
        workflow(
            [
                {"id": "ask", "type": "input", "params": {"name": "ask", "default": "1, 2, 3,"}},
                {"id": "write", "type": "llm", "params": {"temperature": 0, "max_tokens": 1500}},
            ],
            [("ask.value", "write.prompt")],
        ),
        builtin_registry(),
    )
    execution = new_execution(
        plan, resolve_inputs(plan, {}), run_id="run_cancel", listeners=[listen], models=models
    )
    task = asyncio.create_task(execution.execute())
    await asyncio.wait_for(streaming.wait(), timeout=60)
    cancelled_at = time.perf_counter()
    execution.cancel()
    result = await task
    stopped_after = time.perf_counter() - cancelled_at
    assert result.status == "cancelled"
    assert result.nodes["write"].status == "cancelled"
    assert stopped_after < 1.0  # the run returns only once the worker thread has stopped
    streamed = sum(isinstance(e, NodeToken) for e in events)
    await asyncio.sleep(0.3)
    assert sum(isinstance(e, NodeToken) for e in events) == streamed
    assert streamed < 1000
    # The model is free again at once.
    again = await run_llm(models, FEW_SHOT, temperature=0, max_tokens=4, stop=["\n"])
    assert again.status == "succeeded"


async def test_a_timeout_stops_generation(models: ModelService) -> None:
    started = time.perf_counter()
    result = await run_llm(models, "1, 2, 3,", temperature=0, max_tokens=1500, timeout_s=0.5)
    assert result.status == "failed"
    assert result.nodes["write"].error == "timed out after 0.5 s"
    assert time.perf_counter() - started < 3


async def test_one_generation_at_a_time_per_model(models: ModelService) -> None:
    """Two nodes on the same model: their generations do not overlap."""
    events: list[tuple[str, float]] = []
    nodes = [
        {"id": "ask", "type": "input", "params": {"name": "ask", "default": "1, 2, 3,"}},
        {"id": "a", "type": "llm", "params": {"temperature": 0, "max_tokens": 6}},
        {"id": "b", "type": "llm", "params": {"temperature": 0, "max_tokens": 6}},
    ]
    plan = compile_plan(
        workflow(nodes, [("ask.value", "a.prompt"), ("ask.value", "b.prompt")]),
        builtin_registry(),
    )

    def listen(event: AnyEvent) -> None:
        if isinstance(event, NodeToken):
            events.append((event.node, time.perf_counter()))

    result = await new_execution(
        plan, resolve_inputs(plan, {}), run_id="run_two", listeners=[listen], models=models
    ).execute()
    assert result.status == "succeeded"
    order = [node for node, _ in events]
    first = order[0]
    assert order == [first] * order.count(first) + [n for n in order if n != first]
    assert result.nodes["a"].output == result.nodes["b"].output


async def test_chat_format_from_the_registry(
    models: ModelService, embedded_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "models.toml").write_text(
        f'[models.gemma-chat]\nprovider = "llama_cpp"\npath = "{embedded_model}"\n'
        'chat_format = "gemma"\nn_ctx = 512\n'
    )
    chat = ModelService(ModelRegistry.load(tmp_path), budget=4 * 1024**3)
    try:
        events: list[AnyEvent] = []
        result = await run_llm(
            chat, "Name a colour.", events, model="gemma-chat", temperature=0, max_tokens=6
        )
    finally:
        await chat.close()
    assert result.status == "succeeded", result.nodes["write"].error
    usage = result.nodes["write"].usage
    assert usage is not None
    assert usage["prompt_tokens"] > 5  # the chat template's turn markers count too
    tokens = "".join(e.text for e in events if isinstance(e, NodeToken))
    assert tokens == result.outputs["text"]


# -- failures --------------------------------------------------------------------------------


def registry_in(directory: Path, entries: str) -> ModelService:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "models.toml").write_text(entries)
    return ModelService(ModelRegistry.load(directory), budget=4 * 1024**3)


async def test_missing_gguf_fails_the_node_clearly(tmp_path: Path) -> None:
    service = registry_in(tmp_path, '[models.ghost]\nprovider = "llama_cpp"\npath = "ghost.gguf"\n')
    result = await run_llm(service, "Hello", model="ghost", max_tokens=4)
    assert result.status == "failed"
    assert (
        result.nodes["write"].error == f"model ghost: file {tmp_path / 'ghost.gguf'} does not exist"
    )
    assert result.nodes["write"].attempt == 1  # not retried: it cannot get better


async def test_corrupt_gguf_fails_the_node_clearly(tmp_path: Path, embedded_model: Path) -> None:
    (tmp_path / "junk.gguf").write_bytes(b"this is not a model\n" * 100)
    with embedded_model.open("rb") as source:  # a valid header, then the file ends
        (tmp_path / "cut.gguf").write_bytes(source.read(20 * 1024**2))
    service = registry_in(
        tmp_path,
        '[models.junk]\nprovider = "llama_cpp"\npath = "junk.gguf"\n'
        '[models.cut]\nprovider = "llama_cpp"\npath = "cut.gguf"\n',
    )
    junk = await run_llm(service, "Hello", model="junk", max_tokens=4)
    assert junk.status == "failed"
    assert junk.nodes["write"].error == (
        f"{tmp_path / 'junk.gguf'} is not a valid GGUF file: it does not start with GGUF"
    )
    cut = await run_llm(service, "Hello", model="cut", max_tokens=4)
    assert cut.status == "failed"
    error = cut.nodes["write"].error or ""
    assert error.startswith(f"model cut: cannot load {tmp_path / 'cut.gguf'}: ")
    assert "not within the file bounds" in error
    await service.close()


async def test_model_that_does_not_fit_the_budget_is_refused(embedded_model: Path) -> None:
    service = ModelService(ModelRegistry.load(ROOT / "models"), budget=300 * 1024**2)
    result = await run_llm(service, "Hello", max_tokens=4)
    assert result.status == "failed"
    assert result.nodes["write"].error == (
        "model gemma-3-270m needs about 805.4 MiB (file, KV cache for n_ctx=2048, compute buffer "
        "for n_batch=512), more than the model memory budget of 300.0 MiB: raise "
        "NODELOOM_MODEL_MEMORY_BUDGET or lower n_ctx / n_batch in models.toml"
    )
    assert service.pool.loaded == []


async def test_prompt_longer_than_the_context_fails_clearly(
    embedded_model: Path, tmp_path: Path
) -> None:
    service = registry_in(
        tmp_path, f'[models.short]\nprovider = "llama_cpp"\npath = "{embedded_model}"\nn_ctx = 64\n'
    )
    result = await run_llm(service, "word " * 200, model="short", max_tokens=4)
    await service.close()
    assert result.status == "failed"
    error = result.nodes["write"].error or ""
    assert error.startswith("the prompt is ")
    assert error.endswith(" tokens, more than model short takes (n_ctx = 64)")


async def test_without_models_the_node_says_so() -> None:
    nodes = [
        {"id": "ask", "type": "input", "params": {"name": "ask", "default": "Hi"}},
        {"id": "write", "type": "llm", "params": {}},
    ]
    plan = compile_plan(workflow(nodes, [("ask.value", "write.prompt")]), builtin_registry())
    result = await new_execution(plan, resolve_inputs(plan, {}), run_id="run_none").execute()
    assert result.nodes["write"].error == "this engine was started without models"


async def test_prompt_cache_reuses_the_previous_prompt(
    embedded_model: Path, tmp_path: Path
) -> None:
    service = registry_in(
        tmp_path,
        f'[models.cached]\nprovider = "llama_cpp"\npath = "{embedded_model}"\n'
        "prompt_cache = true\n",
    )
    try:
        first = await run_llm(service, FEW_SHOT, model="cached", temperature=0, max_tokens=4)
        second = await run_llm(service, FEW_SHOT, model="cached", temperature=0, max_tokens=4)
    finally:
        await service.close()
    assert first.status == second.status == "succeeded"
    assert first.nodes["write"].usage == second.nodes["write"].usage
