"""``GET /api/usage``: the caller's runs' tokens and cost by model, workflow and day, within
``since`` / ``until``; another user's runs are not counted. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from server.app import create_app
from tests.support.accounts import tokens_for
from tests.support.api import make_config
from tests.support.nodes import api_test_registry


def spending(name: str, *calls: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": name,
        "nodes": [
            {"id": f"s{i}", "type": "spend", "params": call} for i, call in enumerate(calls)
        ],
        "edges": [],
    }


A = {"model": "a", "prompt_tokens": 10, "completion_tokens": 5, "cost": 0.25}
B = {"model": "b", "prompt_tokens": 100, "completion_tokens": 1}


async def test_usage_by_model_workflow_and_day(tmp_path: Path, database_url: str) -> None:
    ada, bob = await tokens_for(database_url, "ada", "bob")
    as_ada, as_bob = ({"Authorization": f"Bearer {token}"} for token in (ada, bob))
    app = create_app(make_config(tmp_path, database_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:

        async def run(document: dict[str, Any], headers: dict[str, str]) -> str:
            saved = await client.post("/api/workflows", json=document, headers=headers)
            workflow_id = str(saved.json()["id"])
            started = await client.post(
                f"/api/workflows/{workflow_id}/runs", json={"wait": True}, headers=headers
            )
            assert started.json()["status"] == "succeeded", started.text
            return workflow_id

        async def usage(headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
            response = await client.get("/api/usage", params=params, headers=headers)
            assert response.status_code == 200, response.text
            return list(response.json()["rows"])

        both = await run(spending("both", A, B, A), as_ada)
        only_a = await run(spending("only a", A), as_ada)
        await run(spending("bob's", A, B), as_bob)

        assert await usage(as_ada, group_by="model") == [
            {"key": "a", "runs": 2, "prompt_tokens": 30, "completion_tokens": 15, "cost": 0.75},
            {"key": "b", "runs": 1, "prompt_tokens": 100, "completion_tokens": 1, "cost": 0.0},
        ]
        by_workflow = {row["key"]: row for row in await usage(as_ada, group_by="workflow")}
        assert set(by_workflow) == {both, only_a}
        assert by_workflow[both]["prompt_tokens"] == 120
        assert by_workflow[both]["cost"] == 0.5
        today = datetime.now(UTC).date().isoformat()
        assert await usage(as_ada, group_by="day") == [
            {"key": today, "runs": 2, "prompt_tokens": 130, "completion_tokens": 16, "cost": 0.75}
        ]
        later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert await usage(as_ada, group_by="model", since=later) == []
        assert await usage(as_ada, group_by="model", until=earlier) == []
        assert len(await usage(as_ada, group_by="model", since=earlier, until=later)) == 2
        assert [row["runs"] for row in await usage(as_bob, group_by="model")] == [1, 1]
        refused = await client.get("/api/usage", params={"group_by": "hour"}, headers=as_ada)
        assert refused.status_code == 400


async def test_dates_and_impossible_dates(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        day = await client.get("/api/usage", params={"since": "2026-01-01", "until": "2099-01-01"})
        assert day.status_code == 200
        assert day.json() == {"group_by": "model", "rows": []}
        assert (await client.get("/api/usage", params={"since": "yesterday"})).status_code == 400
        impossible = await client.get("/api/usage", params={"until": "2026-02-30"})
        assert impossible.status_code == 422
        assert "until: '2026-02-30' is not a date" in impossible.text
