"""A run whose caller waits for its end: its row is stored with its first commit (one transaction
for a run that ends at once) or after `DEFERRED_START_S`, and nothing of it when it is refused.
On SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.errors import NotFound
from engine.runs import launch as runs
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.tables import EventRow, NodeResultRow, ReusedResultsRow, RunRow
from engine.storage.writer import ResultWriter
from tests.support.documents import workflow
from tests.support.runs import count, deleted_since

NODES: list[dict[str, Any]] = [
    {"id": "a", "type": "template", "params": {"template": "a"}},
    {"id": "b", "type": "template", "params": {"template": "{{ text }} b"}},
]
EDGES = [("a.text", "b.text")]
LONG: list[dict[str, Any]] = [{"id": "long", "type": "sleep", "params": {"seconds": 30}}]


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many batches each commit of the run service's writer held, in order."""
    made: list[int] = []
    write = ResultWriter._write

    async def counted(self: ResultWriter, results: Any, events: Any) -> set[str]:
        made.append(len(results))
        return await write(self, results, events)

    monkeypatch.setattr(ResultWriter, "_write", counted)
    return made


async def test_a_rerun_that_ends_at_once_is_stored_in_one_commit(
    service: RunService, commits: list[int]
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    commits.clear()
    changed = {"b": {"template": "B {{ text }}"}}
    child = await (await service.rerun(parent.id, params=changed, caller_waits=True)).wait()
    assert commits == [2]  # the row and the end: one transaction
    changed = {"b": {"template": "C {{ text }}"}}
    unwaited = await (await service.rerun(parent.id, params=changed)).wait()
    assert commits == [2, 1, 1]  # the row first, as the caller may ask for it at once

    for record in (child, unwaited):
        stored = await service.get(record.id)
        assert stored.status == "succeeded"
        assert stored.parent_run_id == parent.id
        assert stored.finished_at == record.finished_at
        assert stored.nodes["a"].reason == f"reused from run {parent.id}"
        assert stored.nodes["b"].status == "succeeded"
        events = await service.store.events(record.id)
        assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    assert (await service.get(child.id)).outputs == {}  # no output node
    assert (await service.get(child.id)).nodes["b"].output == {"text": "B a"}


async def test_the_row_of_a_long_run_is_stored_after_the_deferral(service: RunService) -> None:
    active = await service.start(workflow(LONG), caller_waits=True)
    await asyncio.sleep(runs.DEFERRED_START_S + 0.5)
    row = await service.store.run_row(active.id)  # stored though nothing else was committed
    assert row.status == "running"
    assert (await service.cancel(active.id)).status == "cancelled"


async def test_a_run_not_stored_yet_is_found_and_cancelled(
    service: RunService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "DEFERRED_START_S", 60)
    active = await service.start(workflow(LONG), caller_waits=True, owner_id="ann")
    with pytest.raises(NotFound):
        await service.store.run_row(active.id)
    assert (await service.get(active.id, owner_id="ann")).status == "running"
    with pytest.raises(NotFound):
        await service.get(active.id, owner_id="bob")
    with pytest.raises(NotFound):
        await service.cancel(active.id, owner_id="bob")
    record = await service.cancel(active.id, owner_id="ann")
    assert record.status == "cancelled"
    assert (await service.get(active.id)).nodes["long"].status == "cancelled"  # stored now


async def test_a_waited_rerun_of_a_deleted_parent_stores_nothing_of_it(
    service: RunService, database: Database
) -> None:
    parent = await deleted_since(service, workflow(NODES, EDGES))
    # The child's row, its result and events would be committed with the other run's.
    other = asyncio.ensure_future(service.execute(workflow(NODES, EDGES)))
    active = await service.rerun(parent.id, from_node="a", caller_waits=True)
    with pytest.raises(NotFound, match=f"run {parent.id} not found"):
        await active.wait()
    assert (await other).status == "succeeded"
    assert await count(database, RunRow) == 1
    assert await count(database, NodeResultRow) == 2  # the other run's
    assert await count(database, ReusedResultsRow) == 0
    assert await count(database, EventRow) == len(await service.store.events((await other).id))
    assert (await service.execute(workflow(NODES, EDGES))).status == "succeeded"
