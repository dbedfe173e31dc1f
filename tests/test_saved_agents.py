"""Saved agents on SQLite and a real PostgreSQL: storage, per-owner scoping, and a run copying a
saved agent into its snapshot so that later edits never change what a stored run did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.errors import NotFound
from engine.runs.service import RunService
from engine.storage.agents import AgentConfig, AgentStore, decode_config
from engine.storage.database import Database
from engine.storage.tables import RunRow
from tests.support.agents import MODEL, ScriptedModels
from tests.support.documents import workflow
from tests.support.engine import builtin_registry
from tests.support.runs import count

CONFIG = AgentConfig(name="Reckoner", model=MODEL, tools=["calculator"], max_steps=2)


async def test_saved_agents_are_stored_listed_updated_and_deleted(database: Database) -> None:
    agents = AgentStore(database)
    first = await agents.create(CONFIG, owner_id="u1")
    second = await agents.create(msgspec.structs.replace(CONFIG, name="Other"), owner_id="u1")
    await agents.create(CONFIG, owner_id="u2")
    assert first.id.startswith("ag_")
    assert (await agents.get(first.id)).config == CONFIG

    page = await agents.list(owner_id="u1", limit=1)
    assert [record.id for record in page.items] == [second.id]
    assert page.next_cursor is not None
    rest = await agents.list(owner_id="u1", limit=1, cursor=page.next_cursor)
    assert [record.id for record in rest.items] == [first.id]
    assert rest.next_cursor is None

    changed = msgspec.structs.replace(CONFIG, system_prompt="Be brief.", max_steps=4)
    updated = await agents.update(first.id, changed, owner_id="u1")
    assert updated.config == changed
    assert updated.updated_at >= first.updated_at
    assert (await agents.get(first.id, owner_id="u1")).config.max_steps == 4

    await agents.delete(first.id, owner_id="u1")
    with pytest.raises(NotFound, match=f"agent {first.id} not found"):
        await agents.get(first.id)


async def test_another_owners_agent_is_not_found(database: Database) -> None:
    agents = AgentStore(database)
    mine = await agents.create(CONFIG, owner_id="u1")
    for call in (
        agents.get(mine.id, owner_id="u2"),
        agents.update(mine.id, CONFIG, owner_id="u2"),
        agents.delete(mine.id, owner_id="u2"),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await agents.get(mine.id, owner_id="u1")).config == CONFIG


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a"}, "missing required field `model`"),
        ({"name": "a", "model": "m", "temperature": 3}, r"<= 2(\.0)? - at `\$\.temperature`"),
        ({"name": "a", "model": "m", "max_steps": 0}, r">= 1 - at `\$\.max_steps`"),
        ({"name": "a", "model": "m", "tools": "calculator"}, "Expected `array`, got `str`"),
        ({"name": "a", "model": "m", "colour": "red"}, "unknown field `colour`"),
        ({"name": " ", "model": "m"}, r"matching regex '\\\\S' - at `\$\.name`"),
    ],
)
def test_a_bad_configuration_names_its_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_config(data)


def agent_document(**params: Any) -> Any:
    return workflow(
        [
            {"id": "task", "type": "input", "params": {"name": "task", "default": "2 + 2?"}},
            {"id": "solve", "type": "agent", "params": params},
            {"id": "answer", "type": "output", "params": {"name": "answer"}},
        ],
        [("task.value", "solve.task"), ("solve.answer", "answer.value")],
    )


async def test_a_run_copies_the_saved_agent_into_its_snapshot(
    database: Database, tmp_path: Path
) -> None:
    models = ScriptedModels(
        [
            '{"tool": "calculator", "args": {"expression": "2 + 2"}}',
            '{"answer": "4"}',
        ]
    )
    service = RunService(
        database,
        builtin_registry(),
        workspace=tmp_path,
        models=models,  # type: ignore[arg-type]
    )
    agents = AgentStore(database)
    saved = await agents.create(CONFIG)
    try:
        record = await (
            await service.start(agent_document(agent=saved.id, system_prompt="Add."))
        ).wait()
        assert record.status == "succeeded", record.error
        assert record.outputs == {"answer": "4"}
        # Node params win over the saved agent's; the rest comes from the agent.
        assert "Add.\n" in models.requests[0].prompt
        assert models.requests[-1].response_schema == {
            "type": "object",
            "properties": {"answer": {"type": "string", "minLength": 1}},
            "required": ["answer"],
            "additionalProperties": False,
        }
        await agents.update(saved.id, msgspec.structs.replace(CONFIG, max_steps=9))
        snapshot = await service.store.snapshot(await service.store.run_row(record.id))
        params = next(node for node in snapshot["nodes"] if node["id"] == "solve")["params"]
        assert params == {
            "agent": saved.id,
            "model": MODEL,
            "system_prompt": "Add.",
            "tools": ["calculator"],
            "temperature": 0.0,
            "max_steps": 2,
            "max_tokens": 256,
            "fallbacks": [],
        }
    finally:
        await service.close()


async def test_an_unknown_saved_agent_stores_nothing(database: Database, tmp_path: Path) -> None:
    service = RunService(database, builtin_registry(), workspace=tmp_path)
    try:
        with pytest.raises(NotFound, match="node 'solve': agent ag_missing not found"):
            await service.start(agent_document(agent="ag_missing"))
    finally:
        await service.close()
    assert await count(database, RunRow.__table__) == 0
