"""Replays (SPEC §17), on SQLite and a real PostgreSQL: every node executes again except the
recordable ones (an `llm` here, answered by a scripted model that counts its calls), which take
the replayed run's records while their cache keys are the recorded ones; a change upstream of
one fails it naming what changed, or with `on_miss: call` calls the model for it alone. What a
real model does on replay is checked with the embedded model in test_cli_replay.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Conflict
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.agents import MODEL, ScriptedModels
from tests.support.documents import workflow
from tests.support.nodes import Sleep, test_registry

SUMMARY = workflow(
    [
        {"id": "text", "type": "input", "params": {"name": "text", "default": "bees hum"}},
        {"id": "ask", "type": "template", "params": {"template": "Summarise: {{ text }}"}},
        {"id": "summarize", "type": "llm", "params": {"model": MODEL, "max_tokens": 16}},
        {"id": "tidy", "type": "template", "params": {"template": "[{{ text | trim }}]"}},
        {"id": "out", "type": "output", "params": {"name": "summary"}},
    ],
    [
        ("text.value", "ask.text"),
        ("ask.text", "summarize.prompt"),
        ("summarize.text", "tidy.text"),
        ("tidy.text", "out.value"),
    ],
)


@pytest.fixture
async def scripted(database: Database, tmp_path: Path) -> AsyncIterator[Any]:
    """A run service whose model answers from a script that a test may extend."""
    models = ScriptedModels(["bees make honey", "bees dance"])
    service = RunService(database, test_registry(), workspace=tmp_path, models=models)  # type: ignore[arg-type]
    yield service, models
    await service.close()


async def test_a_replay_calls_no_model_and_gives_the_same_outputs(scripted: Any) -> None:
    service, models = scripted
    first = await (await service.start(SUMMARY)).wait()
    assert first.outputs == {"summary": "[bees make honey]"}
    assert len(models.requests) == 1

    replay = await (await service.replay(first.id)).wait()
    assert len(models.requests) == 1  # no model called
    assert (replay.status, replay.outputs) == ("succeeded", first.outputs)
    assert (replay.replay_of, replay.parent_run_id) == (first.id, first.id)
    summarize = replay.nodes["summarize"]
    assert (summarize.status, summarize.reason_code) == ("cached", "replayed")
    assert summarize.reason == f"replayed from run {first.id}"
    for executed in ("text", "ask", "tidy", "out"):  # the deterministic part runs again
        assert replay.nodes[executed].status == "succeeded", executed

    # A template upstream of the model changed: the replay fails naming it, calling nothing.
    changed = {"ask": {"template": "Summarize briefly: {{ text }}"}}
    missed = await (await service.replay(first.id, params=changed)).wait()
    assert len(models.requests) == 1
    assert missed.status == "failed"
    assert missed.nodes["summarize"].error == (
        f"replay of run {first.id}: not as recorded (upstream changed: ask)"
    )
    assert missed.nodes["tidy"].status == "skipped"

    # on_miss: call calls the model for that node alone.
    called = await (await service.replay(first.id, params=changed, on_miss="call")).wait()
    assert len(models.requests) == 2
    assert called.status == "succeeded"
    assert called.outputs == {"summary": "[bees dance]"}
    assert called.nodes["summarize"].reason_code == "replay_missed"


async def test_a_replay_of_a_replay_and_of_an_input_change(scripted: Any) -> None:
    service, models = scripted
    first = await (await service.start(SUMMARY)).wait()
    again = await (await service.replay(first.id)).wait()
    twice = await (await service.replay(again.id)).wait()
    assert twice.outputs == first.outputs
    assert len(models.requests) == 1
    other = await (await service.replay(first.id, inputs={"text": "ants march"})).wait()
    assert other.status == "failed"
    assert "upstream changed: ask" in (other.nodes["summarize"].error or "")


async def test_only_a_finished_run_is_replayed(scripted: Any) -> None:
    service, _ = scripted
    asking = workflow([{"id": "ask", "type": "human_input", "params": {}}])
    waiting = await (await service.start(asking)).wait()
    with pytest.raises(Conflict, match="still waiting"):
        await service.replay(waiting.id)
    with pytest.raises(ValueError, match="on_miss"):
        await service.replay(waiting.id, on_miss="maybe")


async def test_a_replay_resumed_after_its_server_stopped_goes_on_replaying(
    database: Database, tmp_path: Path
) -> None:
    # The replay's server stops while a slow node before the model runs; the server that
    # resumes the run replays the model's record too (the replay is stored with the run).
    document = workflow(
        [
            {"id": "text", "type": "input", "params": {"name": "text", "default": "bees hum"}},
            {"id": "pause", "type": "sleep", "params": {"seconds": 0.3}},
            {"id": "ask", "type": "template", "params": {"template": "Summarise: {{ text }}"}},
            {"id": "summarize", "type": "llm", "params": {"model": MODEL, "max_tokens": 16}},
            {"id": "out", "type": "output", "params": {"name": "summary"}},
        ],
        [
            ("text.value", "pause.x"),
            ("pause.y", "ask.text"),
            ("ask.text", "summarize.prompt"),
            ("summarize.text", "out.value"),
        ],
    )
    models = ScriptedModels(["bees make honey", "bees dance"])
    first = RunService(database, test_registry(), workspace=tmp_path, models=models)  # type: ignore[arg-type]
    recorded = await (await first.start(document)).wait()
    handle = await first.replay(recorded.id, on_miss="call")
    while "pause" not in Sleep.executions[1:]:  # noqa: ASYNC110 - the replay's pause started
        await asyncio.sleep(0.01)
    await first.close()
    assert (await first.get(handle.id)).status == "interrupted"
    again = RunService(database, test_registry(), workspace=tmp_path, models=models)  # type: ignore[arg-type]
    try:
        resumed = await (await again.resume(handle.id)).wait()
    finally:
        await again.close()
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == recorded.outputs
    assert len(models.requests) == 1  # the model was called by the first run only
    assert (resumed.nodes["summarize"].reason_code, resumed.replay_of) == ("replayed", recorded.id)
