"""What a run's end stores for its reruns (its ``priors``: engine/storage/priors.py) gives what
its result rows give: every reusable result, output and origin alone, those it took over by
reference and those of its bodies' items included, and a large output from the blob that
holds it. A run going on again has none until it ends again, and priors stored late (after
their end) are not stored over a later state of the run. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

import engine.storage.writer as writer_module
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.priors import prior_results
from engine.storage.writer import Priors, ResultWriter
from tests.support.bodies import mapped
from tests.support.documents import workflow
from tests.support.nodes import test_registry

NODES: list[dict[str, Any]] = [
    {"id": "topic", "type": "input", "params": {"name": "topic", "default": "bees"}},
    {"id": "big", "type": "template", "params": {"template": "{{ topic * 2000 }}"}},
    {"id": "ask", "type": "template", "params": {"template": "About {{ topic }}."}},
    {"id": "broken", "type": "template", "params": {"template": "{{ text.nope.nope }}"}},
    {"id": "out", "type": "output", "params": {"name": "result"}},
]
EDGES = [
    ("topic.value", "big.topic"),
    ("topic.value", "ask.topic"),
    ("ask.text", "broken.text"),
    ("ask.text", "out.value"),
]


@pytest.fixture(autouse=True)
def priors_of_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs here are small: they store priors as bigger ones do."""
    monkeypatch.setattr(writer_module, "PRIORS_FROM", 0)


async def stored_priors(database: Database, run_id: str) -> str | None:
    return await database.transaction(
        lambda c: c.execute(
            text("SELECT priors FROM runs WHERE id = :id"), {"id": run_id}
        ).scalar_one()
    )


async def from_rows(database: Database, run_id: str) -> dict[str, Any]:
    """What a rerun of the run takes over, read from its rows (its summary set aside)."""
    kept = await stored_priors(database, run_id)
    await database.transaction(
        lambda c: c.execute(text("UPDATE runs SET priors = NULL WHERE id = :id"), {"id": run_id})
    )
    try:
        return await prior_results(database, run_id)
    finally:
        await database.transaction(
            lambda c: c.execute(
                text("UPDATE runs SET priors = :priors WHERE id = :id"),
                {"id": run_id, "priors": kept},
            )
        )


async def test_a_run_ends_with_what_its_rows_give_a_rerun(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    assert parent.nodes["broken"].status == "failed"
    child = await (await service.rerun(parent.id, inputs={"topic": "ants"})).wait()
    grandchild = await (
        await service.rerun(child.id, params={"ask": {"template": "{{ topic }}"}})
    ).wait()
    words = await service.execute(mapped(), {"words": ["a", "b", "c"]})
    item = await (await service.rerun(words.id, inputs={"words": ["a", "B", "c"]})).wait()
    await service.close()
    runs = [parent, child, grandchild, words, item]
    for run in runs:
        assert await stored_priors(database, run.id) is not None, run.id
        summarised = await prior_results(database, run.id)
        assert summarised == await from_rows(database, run.id), run.id
    taken = await prior_results(database, grandchild.id)
    assert taken["big"].origin_run_id == child.id  # the child's own, taken over
    assert taken["big"].output == {"text": "ants" * 2000}  # from its blob
    assert "broken" not in taken
    items = await prior_results(database, item.id)
    assert items["m[0]/up"].origin_run_id == words.id
    assert items["m[1]/up"].origin_run_id == item.id
    # A new service reruns from the summary as from the rows.
    fresh = RunService(database, test_registry())
    try:
        again = await (await fresh.rerun(item.id, inputs={"words": ["a", "B", "C"]})).wait()
    finally:
        await fresh.close()
    assert again.outputs["loud"] == ["A!", "B!", "C!"]
    assert again.nodes["m[1]/up"].reason == f"reused from run {item.id}"


async def test_a_run_taken_up_again_has_no_priors_until_it_ends(
    service: RunService, database: Database
) -> None:
    run = await service.execute(workflow(NODES, EDGES))
    await service.close()
    await database.transaction(
        lambda c: c.execute(
            text("UPDATE runs SET status = 'interrupted' WHERE id = :id"), {"id": run.id}
        )
    )
    assert await service.store.claim_for_resume(run.id, "elsewhere")
    assert await stored_priors(database, run.id) is None
    assert await prior_results(database, run.id) == await from_rows(database, run.id)


async def test_priors_are_stored_only_while_the_end_they_are_of_stands(
    service: RunService, database: Database
) -> None:
    run = await service.execute(workflow(NODES, EDGES))
    await service.close()
    kept = await stored_priors(database, run.id)
    states = await prior_results(database, run.id)
    seq = await service.store.last_seq(run.id)
    writer = ResultWriter(database)
    try:
        # Late: the run was taken up again meanwhile (see `claim_for_resume`).
        await database.transaction(
            lambda c: c.execute(
                text("UPDATE runs SET status = 'running', priors = NULL WHERE id = :id"),
                {"id": run.id},
            )
        )
        writer.keep_priors(run.id, Priors(states, "succeeded", seq))
        await writer.flush()
        assert await stored_priors(database, run.id) is None
        # Of another end than the last one.
        await database.transaction(
            lambda c: c.execute(
                text("UPDATE runs SET status = 'succeeded' WHERE id = :id"), {"id": run.id}
            )
        )
        writer.keep_priors(run.id, Priors(states, "succeeded", seq - 1))
        await writer.flush()
        assert await stored_priors(database, run.id) is None
        writer.keep_priors(run.id, Priors(states, "succeeded", seq))
        await writer.flush()
        assert await stored_priors(database, run.id) == kept
    finally:
        await writer.close()


async def test_a_small_run_stores_no_priors(
    service: RunService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "PRIORS_FROM", len(NODES) + 1)
    small = await service.execute(workflow(NODES, EDGES))
    await service.settled()
    assert await stored_priors(database, small.id) is None
    assert (await prior_results(database, small.id)).keys() == {"topic", "big", "ask", "out"}
