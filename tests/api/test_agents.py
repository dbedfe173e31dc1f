"""Saved agents over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]

AGENT = {"name": "Researcher", "model": "remote", "tools": ["calculator"], "max_steps": 4}


async def test_agents_crud(client: Client) -> None:
    created = await client.post("/api/agents", json=AGENT)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["config"]["name"] == "Researcher"
    assert agent["config"]["temperature"] == 0.0
    agent_id = agent["id"]
    assert (await client.get(f"/api/agents/{agent_id}")).json()["config"]["max_steps"] == 4
    changed = await client.put(f"/api/agents/{agent_id}", json={**AGENT, "max_steps": 9})
    assert changed.json()["config"]["max_steps"] == 9
    listed = (await client.get("/api/agents")).json()
    assert [item["id"] for item in listed["items"]] == [agent_id]
    assert (await client.delete(f"/api/agents/{agent_id}")).status_code == 204
    assert (await client.get(f"/api/agents/{agent_id}")).status_code == 404


async def test_invalid_agents(client: Client) -> None:
    too_many = await client.post("/api/agents", json={**AGENT, "max_steps": 500})
    assert too_many.status_code == 400
    assert "max_steps" in too_many.text
    unknown = await client.post("/api/agents", json={**AGENT, "colour": "red"})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["path"] == "/colour"
    assert (await client.put("/api/agents/ag_nope", json=AGENT)).status_code == 404
