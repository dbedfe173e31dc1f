"""Schedules (SPEC §16): made, listed with `next_run_at` and deleted through the API, bad cron
expressions and time zones refused naming the field; slots claimed once however many servers
look (two schedulers with one injected clock on SQLite and PostgreSQL, and two `nodeloom serve`
processes on one real PostgreSQL), missed slots caught up or not."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar
from litestar.testing import AsyncTestClient

from engine.documents.document import Workflow, from_builtins
from engine.records import WorkflowRecord
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.schedules import ScheduleStore
from server.app import create_app
from server.schedules import UNSTARTED_AFTER_S, Scheduler
from tests.support.accounts import tokens_for
from tests.support.api import GREETING, make_config, saved
from tests.support.nodes import api_test_registry
from tests.support.serve import Served

Client = AsyncTestClient[Litestar]
DAILY = "0 9 * * *"


async def test_schedules_are_made_listed_and_deleted(client: Client) -> None:
    workflow_id = await saved(client)
    base = f"/api/workflows/{workflow_id}/schedules"
    made = await client.post(
        base, json={"cron": DAILY, "timezone": "Europe/Paris", "inputs": {"name": "Ada"}}
    )
    assert made.status_code == 201, made.text
    schedule = made.json()
    assert schedule["id"].startswith("sched_")
    assert schedule["catch_up"] == "none"
    next_run = datetime.fromisoformat(schedule["next_run_at"])
    assert next_run.utcoffset() == timedelta(0)
    assert next_run.astimezone(ZoneInfo("Europe/Paris")).hour == 9
    listed = (await client.get(base)).json()["items"]
    assert [item["id"] for item in listed] == [schedule["id"]]
    assert listed[0]["next_run_at"] == schedule["next_run_at"]
    assert (await client.delete(f"{base}/{schedule['id']}")).status_code == 204
    assert (await client.get(base)).json()["items"] == []
    assert (await client.delete(f"{base}/{schedule['id']}")).status_code == 404
    assert (await client.get("/api/workflows/wf_nope/schedules")).status_code == 404


async def test_bad_schedules_are_refused_naming_the_field(client: Client) -> None:
    workflow_id = await saved(client)
    base = f"/api/workflows/{workflow_id}/schedules"
    for body, path in [
        ({"cron": "61 * * * *"}, "/cron"),
        ({"cron": "every day"}, "/cron"),
        ({"cron": "* * *"}, "/cron"),
        ({"cron": DAILY, "timezone": "Mars/Olympus"}, "/timezone"),
        ({"cron": DAILY, "inputs": {"who": "x"}}, "/inputs"),
        ({"cron": DAILY, "catch_up": "all"}, None),
    ]:
        response = await client.post(base, json=body)
        assert response.status_code in (400, 422), (body, response.text)
        if path is not None:
            assert response.status_code == 422
            assert response.json()["errors"][0]["path"] == path, response.text
    assert (await client.get(base)).json()["items"] == []


async def test_each_slot_is_claimed_once(client: Client, app: Litestar, tmp_path: Path) -> None:
    """Two schedulers (two servers, each its own connections) see the same slot due at once,
    by an injected clock: one run starts. Missed slots: `none` skips them, `latest` runs one."""
    workflow_id = await saved(client)
    base = f"/api/workflows/{workflow_id}/schedules"
    on_time = (await client.post(base, json={"cron": DAILY})).json()
    skip = (await client.post(base, json={"cron": DAILY, "catch_up": "none"})).json()
    latest = (await client.post(base, json={"cron": DAILY, "catch_up": "latest"})).json()
    slot = datetime.fromisoformat(on_time["next_run_at"])
    url = app.state.engine.config.database_url
    databases = [await Database.connect(url) for _ in range(2)]
    services = [
        RunService(database, api_test_registry(), workspace=tmp_path / "ws")
        for database in databases
    ]
    try:
        schedulers = [
            Scheduler(ScheduleStore(database), runs, _current(runs), clock=lambda: slot)
            for database, runs in zip(databases, services, strict=True)
        ]
        first = await asyncio.gather(*(s.tick(slot + timedelta(seconds=1)) for s in schedulers))
        assert sum(len(ids) for ids in first) == 3  # one run per schedule
        again = await asyncio.gather(*(s.tick(slot + timedelta(seconds=2)) for s in schedulers))
        assert again == [[], []]
        # Three days and an hour later, with no server running in between.
        later = slot + timedelta(days=3, hours=1)
        caught = await asyncio.gather(*(s.tick(later) for s in schedulers))
        started = [run_id for ids in caught for run_id in ids]
        assert len(started) == 1
        for handle in [services[0].active.get(run_id) for run_id in started]:
            if handle is not None:
                await handle.wait()
        await asyncio.sleep(0.2)
    finally:
        for runs in services:
            await runs.close()
        for database in databases:
            await database.close()
    runs_now = (await client.get("/api/runs", params={"trigger": "schedule"})).json()["items"]
    by_schedule = Counter(run["trigger"] for run in runs_now)
    assert by_schedule == {
        f"schedule:{on_time['id']}": 1,
        f"schedule:{skip['id']}": 1,
        f"schedule:{latest['id']}": 2,
    }
    listed = {item["id"]: item for item in (await client.get(base)).json()["items"]}
    for item in listed.values():
        assert datetime.fromisoformat(item["next_run_at"]) == slot + timedelta(days=4)
    assert listed[on_time["id"]]["last_run_id"].startswith("run_")
    assert listed[skip["id"]]["last_run_id"].startswith("run_")  # its on-time slot's
    last_run = datetime.fromisoformat(listed[latest["id"]]["last_run_at"])
    assert last_run == slot + timedelta(days=3)


def test_two_servers_start_one_run_per_slot(tmp_path: Path, pg_cluster: Any) -> None:
    """Two `nodeloom serve` processes on one PostgreSQL, a schedule every second: each slot
    starts exactly one run, within a second of its slot."""
    url = pg_cluster.create_database()
    with Served(url, tmp_path, name="a") as first:
        with Served(url, tmp_path, name="b") as second:
            workflow = first.post("/api/workflows", json=GREETING).json()
            base = f"/api/workflows/{workflow['id']}/schedules"
            schedule = second.post(base, json={"cron": "* * * * * *"}).json()
            time.sleep(6.5)
            assert second.delete(f"{base}/{schedule['id']}").status_code == 204
            time.sleep(0.5)
            found = first.get("/api/runs", params={"trigger": f"schedule:{schedule['id']}"})
            runs = found.json()["items"]
        logs = first.output() + second.output()
    assert 5 <= len(runs) <= 8, runs
    slots = Counter(
        datetime.fromisoformat(run["created_at"]).replace(microsecond=0) for run in runs
    )
    assert max(slots.values()) == 1, slots  # no slot started twice
    assert all(run["status"] == "succeeded" for run in runs)
    # Each run was made within a second of its slot (slots are whole seconds).
    assert logs.count("scheduled run started") == len(runs)


def _current(runs: RunService) -> Any:
    async def current(workflow_id: str, owner_id: str | None) -> tuple[WorkflowRecord, Workflow]:
        record = await runs.store.get_workflow(workflow_id, owner_id=owner_id)
        return record, from_builtins(record.document)

    return current


async def test_schedules_belong_to_their_owner(tmp_path: Path, database_url: str) -> None:
    ada, bob = await tokens_for(database_url, "ada", "bob")
    as_ada = {"Authorization": f"Bearer {ada}"}
    as_bob = {"Authorization": f"Bearer {bob}"}
    app = create_app(make_config(tmp_path, database_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        workflow = await client.post("/api/workflows", json=GREETING, headers=as_ada)
        base = f"/api/workflows/{workflow.json()['id']}/schedules"
        made = await client.post(base, json={"cron": DAILY}, headers=as_ada)
        assert made.status_code == 201, made.text
        assert (await client.post(base, json={"cron": DAILY}, headers=as_bob)).status_code == 404
        assert (await client.get(base, headers=as_bob)).status_code == 404
        gone = await client.delete(f"{base}/{made.json()['id']}", headers=as_bob)
        assert gone.status_code == 404
        assert len((await client.get(base, headers=as_ada)).json()["items"]) == 1


async def test_a_slot_claimed_by_a_server_that_stopped_is_started_once(
    client: Client, app: Litestar, tmp_path: Path
) -> None:
    """A server claimed a slot and stopped before it started (or recorded) the slot's run:
    `UNSTARTED_AFTER_S` later, one of the servers still looking starts it."""
    workflow_id = await saved(client)
    base = f"/api/workflows/{workflow_id}/schedules"
    made = (await client.post(base, json={"cron": DAILY})).json()
    slot = datetime.fromisoformat(made["next_run_at"])
    databases = [await Database.connect(app.state.engine.config.database_url) for _ in range(2)]
    services = [RunService(db, api_test_registry(), workspace=tmp_path / "ws") for db in databases]
    try:
        store = ScheduleStore(databases[0])
        following = slot + timedelta(days=1)
        assert await store.claim(made["id"], slot, following, ran=slot, at=slot)  # then stopped
        schedulers = [
            Scheduler(ScheduleStore(db), runs, _current(runs))
            for db, runs in zip(databases, services, strict=True)
        ]
        soon = await asyncio.gather(*(s.tick(slot + timedelta(seconds=10)) for s in schedulers))
        assert soon == [[], []]
        later = slot + timedelta(seconds=UNSTARTED_AFTER_S + 1)
        taken = await asyncio.gather(*(s.tick(later) for s in schedulers))
        started = [run_id for ids in taken for run_id in ids]
        assert len(started) == 1
        again = await asyncio.gather(*(s.tick(later + timedelta(seconds=40)) for s in schedulers))
        assert again == [[], []]
        await asyncio.sleep(0.2)
    finally:
        for runs in services:
            await runs.close()
        for database in databases:
            await database.close()
    listed = (await client.get(base)).json()["items"][0]
    assert listed["last_run_id"] == started[0]
    assert datetime.fromisoformat(listed["last_run_at"]) == slot
    runs_now = (await client.get("/api/runs", params={"trigger": f"schedule:{made['id']}"})).json()
    assert [run["id"] for run in runs_now["items"]] == started
