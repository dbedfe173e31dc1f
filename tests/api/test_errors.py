"""Bad input gets a precise 4xx with a problem-details body, never a 500, and writes nothing."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.app import create_app
from tests.support.api import GREETING, make_config, saved
from tests.support.nodes import api_test_registry

Client = AsyncTestClient[Litestar]


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    problem = response.json()  # type: ignore[attr-defined]
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert isinstance(problem["errors"], list)
    return dict(problem)


async def test_invalid_json(lite: Client) -> None:
    response = await lite.post(
        "/api/workflows",
        content=b'{"schema_version": 1,',
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(response, 400)
    assert "not valid JSON" in str(problem["detail"])


async def test_wrong_content_type(lite: Client) -> None:
    response = await lite.post(
        "/api/workflows", content=b"schema_version: 1", headers={"content-type": "text/yaml"}
    )
    problem = assert_problem(response, 415)
    assert "text/yaml" in str(problem["detail"])


async def test_oversized_body(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, max_body_bytes=512)
    app = create_app(config, registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        big = dict(GREETING, description="x" * 2000)
        assert_problem(await client.post("/api/workflows", json=big), 413)
        assert (await client.get("/api/workflows")).json()["items"] == []


async def test_unknown_routes_ids_and_methods(lite: Client) -> None:
    assert_problem(await lite.get("/api/nothing-here"), 404)
    assert_problem(await lite.get("/api/workflows/wf_unknown"), 404)
    assert_problem(await lite.get("/api/runs/run_unknown/tree"), 404)
    assert_problem(await lite.delete("/api/health"), 405)


async def test_bad_query_parameters(lite: Client) -> None:
    problem = assert_problem(await lite.get("/api/workflows", params={"limit": 0}), 400)
    assert "limit" in str(problem["errors"])
    problem = assert_problem(await lite.get("/api/runs", params={"cursor": "%%%"}), 400)
    assert "cursor" in problem["errors"][0]["message"]  # type: ignore[index]


async def test_bad_if_match(lite: Client) -> None:
    workflow_id = await saved(lite)
    response = await lite.put(
        f"/api/workflows/{workflow_id}", json=GREETING, headers={"If-Match": "banana"}
    )
    assert_problem(response, 400)


async def test_inputs_that_once_caused_server_errors(lite: Client) -> None:
    workflow_id = await saved(lite)
    long_name = "a" * 300
    assert_problem(await lite.put(f"/api/files/{long_name}", content=b"x"), 400)
    assert_problem(await lite.get(f"/api/files/{long_name}"), 400)
    assert_problem(await lite.get("/api/files", params={"dir": "a" * 5000}), 400)
    await lite.put("/api/files/plain.txt", content=b"x")
    assert_problem(await lite.get("/api/files/plain.txt/inside"), 400)
    huge = "99999999999999999999"
    assert_problem(await lite.get(f"/api/workflows/{workflow_id}/versions/{huge}"), 400)
    assert_problem(await lite.get("/api/runs", params={"limit": huge}), 400)
    run = (await lite.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})).json()
    events = await lite.get(f"/api/runs/{run['id']}/events", headers={"Last-Event-ID": huge})
    assert events.status_code == 200
    assert "data:" not in events.text  # nothing after a seq that large
