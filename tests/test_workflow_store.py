"""Workflows with numbered versions, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import pytest

from engine.errors import Conflict, NotFound
from engine.runs.service import RunService
from tests.support.documents import workflow

NODES = [
    {"id": "x", "type": "input", "params": {"name": "x", "default": 1}},
    {"id": "out", "type": "output", "params": {"name": "o"}},
]
DOCUMENT = workflow(NODES, [("x.value", "out.value")], name="first")


async def test_versions_are_numbered_and_kept(service: RunService) -> None:
    store = service.store
    created = await store.create_workflow(DOCUMENT)
    assert (created.version, created.name) == (1, "first")
    renamed = workflow(NODES, [("x.value", "out.value")], name="second")
    saved = await store.save_workflow(created.id, renamed, expected_version=1)
    assert saved.version == 2
    assert (await store.get_workflow(created.id)).name == "second"
    assert (await store.get_workflow(created.id, 1)).document["name"] == "first"
    assert [v["version"] for v in await store.workflow_versions(created.id)] == [2, 1]
    with pytest.raises(Conflict, match="is at version 2, not 1"):
        await store.save_workflow(created.id, DOCUMENT, expected_version=1)
    assert (await store.get_workflow(created.id)).version == 2  # the stale save wrote nothing
    with pytest.raises(NotFound):
        await store.get_workflow(created.id, 7)


async def test_owners_see_only_their_workflows(service: RunService) -> None:
    store = service.store
    mine = await store.create_workflow(DOCUMENT, owner_id="usr_a")
    await store.create_workflow(DOCUMENT, owner_id="usr_b")
    page = await store.list_workflows(owner_id="usr_a")
    assert [item["id"] for item in page.items] == [mine.id]
    with pytest.raises(NotFound):
        await store.get_workflow(mine.id, owner_id="usr_b")


async def test_list_is_paginated(service: RunService) -> None:
    ids = {(await service.store.create_workflow(DOCUMENT)).id for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        page = await service.store.list_workflows(limit=2, cursor=cursor)
        seen += [item["id"] for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5


async def test_runs_of_a_saved_workflow_and_delete(service: RunService) -> None:
    saved = await service.store.create_workflow(DOCUMENT)
    record = await service.execute(DOCUMENT, workflow_id=saved.id, workflow_version=1)
    page = await service.store.list_runs(workflow_id=saved.id)
    assert [run.id for run in page.items] == [record.id]
    assert page.items[0].workflow_version == 1
    await service.store.delete_workflow(saved.id)
    with pytest.raises(NotFound):
        await service.store.get_workflow(saved.id)
    with pytest.raises(NotFound):  # its runs go with it
        await service.get(record.id)


async def test_the_current_version_follows_saves_and_deletes(service: RunService) -> None:
    store = service.store
    document = workflow([{"id": "a", "type": "template", "params": {"template": "x"}}])
    created = await store.create_workflow(document, owner_id="ann")
    assert await store.current_version(created.id, owner_id="ann") == 1
    await store.save_workflow(created.id, document, expected_version=1, owner_id="ann")
    await store.save_workflow(created.id, document, expected_version=2, owner_id="ann")
    assert await store.current_version(created.id) == 3
    with pytest.raises(NotFound):
        await store.current_version(created.id, owner_id="bob")
    await store.delete_workflow(created.id, owner_id="ann")
    with pytest.raises(NotFound):
        await store.current_version(created.id)
