"""`/api/collections` (SPEC §14) on SQLite and PostgreSQL: a collection made, workspace files
indexed in the background with progress, searched; a `retrieve` node reading it in a run whose
rerun retrieves again only once the collection changed; and the bad input of the issue refused
with a 4xx naming the field, nothing stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from engine.storage.accounts import Accounts
from engine.storage.database import Database
from server.app import create_app
from tests.support.api import make_config
from tests.support.nodes import api_test_registry

Client = AsyncTestClient[Litestar]

RETRIEVING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Retrieving",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "q", "schema": {"type": "string"}}},
        {"id": "find", "type": "retrieve", "params": {"collection": "notes", "top_k": 2}},
        {"id": "context", "type": "output", "params": {"name": "context"}},
        {"id": "chunks", "type": "output", "params": {"name": "chunks"}},
    ],
    "edges": [
        {"from": "q.value", "to": "find.query"},
        {"from": "find.context", "to": "context.value"},
        {"from": "find.chunks", "to": "chunks.value"},
    ],
}


async def indexed(client: Client, collection_id: str, *paths: str, **headers: str) -> Any:
    started = await client.post(
        f"/api/collections/{collection_id}/documents", json={"paths": list(paths)}, headers=headers
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]["id"]
    deadline = time.monotonic() + 30
    while True:
        found = (await client.get(f"/api/collections/{collection_id}", headers=headers)).json()
        if found["indexing"]["id"] == job_id and found["indexing"]["status"] != "running":
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


async def finished(client: Client, run_id: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        run = (await client.get(f"/api/runs/{run_id}")).json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)


async def test_index_search_and_retrieve(client: Client, tmp_path: Path) -> None:
    notes = tmp_path / "workspace" / "notes"
    notes.mkdir(parents=True)
    (notes / "comets.md").write_text("# Comets\n\nA comet's tail points away from the Sun.\n")
    (notes / "tides.md").write_text("# Tides\n\nThe Moon's pull raises the tides.\n")
    made = await client.post("/api/collections", json={"name": "notes", "chunk_size": 400})
    assert made.status_code == 201, made.text
    collection = made.json()
    assert (collection["version"], collection["documents"], collection["indexing"]) == (0, 0, None)

    found = await indexed(client, collection["id"], "notes/*.md")
    assert found["indexing"]["status"] == "done"
    assert found["indexing"]["progress"]["done"] == found["indexing"]["progress"]["total"] == 2
    assert (found["documents"], found["chunks"], found["version"]) == (2, 2, 2)
    assert [f["source"] for f in found["files"]] == ["notes/comets.md", "notes/tides.md"]

    searched = await client.get(
        f"/api/collections/{collection['id']}/search", params={"q": "Why do tides rise?", "k": 1}
    )
    assert searched.status_code == 200, searched.text
    assert searched.json()["mode"] == "keyword"
    [hit] = searched.json()["results"]
    assert (hit["source"], hit["chunk"]) == ("notes/tides.md", 0)
    assert hit["text"] == "# Tides\nThe Moon's pull raises the tides."
    assert hit["score"] > 0
    listed = (await client.get("/api/collections")).json()["items"]
    assert [item["name"] for item in listed] == ["notes"]

    workflow_id = (await client.post("/api/workflows", json=RETRIEVING)).json()["id"]
    runs = f"/api/workflows/{workflow_id}/runs"
    started = await client.post(runs, json={"inputs": {"q": "tides"}})
    assert started.status_code == 202, started.text
    first = await finished(client, started.json()["id"])
    assert first["status"] == "succeeded", first
    assert first["outputs"]["context"] == (
        "[1] (notes/tides.md, chunk 0)\n# Tides\nThe Moon's pull raises the tides."
    )
    assert [c["source"] for c in first["outputs"]["chunks"]] == ["notes/tides.md"]

    async def rerun(parent: str) -> Any:
        answered = await client.post(f"/api/runs/{parent}/rerun", json={})
        assert answered.status_code == 202, answered.text
        return await finished(client, answered.json()["id"])

    same = await rerun(first["id"])
    assert same["nodes"]["find"]["reason_code"] == "reused"  # the collection did not change
    (notes / "moon.md").write_text("# Moon\n\nSpring tides come at full and new moon.\n")
    await indexed(client, collection["id"], "notes/*.md")
    changed = await rerun(same["id"])
    assert changed["nodes"]["find"]["status"] == "succeeded"
    assert changed["nodes"]["find"]["cache_key"] != first["nodes"]["find"]["cache_key"]
    assert len(changed["outputs"]["chunks"]) == 2

    gone = await client.delete(f"/api/collections/{collection['id']}")
    assert gone.status_code == 204
    assert (await client.get(f"/api/collections/{collection['id']}")).status_code == 404


async def test_bad_input_is_refused(client: Client) -> None:
    not_embedding = await client.post(
        "/api/collections", json={"name": "v", "embedding_model": "remote"}
    )
    assert not_embedding.status_code == 422
    assert not_embedding.json()["errors"][0]["path"] == "/embedding_model"
    assert "does not make embeddings" in not_embedding.json()["detail"]
    unknown_model = await client.post(
        "/api/collections", json={"name": "v", "embedding_model": "nope"}
    )
    assert unknown_model.status_code == 422
    assert "unknown embedding model 'nope'" in unknown_model.json()["detail"]
    bad_overlap = await client.post(
        "/api/collections", json={"name": "v", "chunk_size": 200, "chunk_overlap": 150}
    )
    assert bad_overlap.status_code == 422
    assert bad_overlap.json()["errors"][0]["path"] == "/chunk_overlap"
    assert (await client.get("/api/collections")).json()["items"] == []

    collection = (await client.post("/api/collections", json={"name": "docs"})).json()
    assert (await client.post("/api/collections", json={"name": "docs"})).status_code == 409
    outside = await client.post(
        f"/api/collections/{collection['id']}/documents", json={"paths": ["../secrets/*"]}
    )
    assert outside.status_code == 400
    assert outside.json()["errors"] == [
        {"code": "path_outside_workspace", "message": "paths/0: path '../secrets/*' is outside "
         "the workspace folder", "node": None, "port": None, "path": "/paths/0"}
    ]  # fmt: skip
    vector = await client.get(
        f"/api/collections/{collection['id']}/search", params={"q": "x", "mode": "vector"}
    )
    assert vector.status_code == 422
    assert "has no embedding model" in vector.json()["detail"]
    nowhere = await client.get("/api/collections/col_nope/search", params={"q": "x"})
    assert nowhere.status_code == 404
    assert (await client.get(f"/api/collections/{collection['id']}")).json()["indexing"] is None

    document = {**RETRIEVING, "nodes": [dict(node) for node in RETRIEVING["nodes"]]}
    document["nodes"][1] = {**document["nodes"][1], "params": {"collection": "missing"}}
    workflow_id = (await client.post("/api/workflows", json=document)).json()["id"]
    runs = f"/api/workflows/{workflow_id}/runs"
    refused = await client.post(runs, json={"inputs": {"q": "x"}})
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"code": "unknown_collection", "message": "unknown collection 'missing'",
         "node": "find", "port": None, "path": "/nodes/1/params/collection"}
    ]  # fmt: skip
    stored = await client.get("/api/runs", params={"workflow_id": workflow_id})
    assert stored.json()["items"] == []


async def test_another_users_collection_is_not_found(tmp_path: Path, sqlite_url: str) -> None:
    database = await Database.connect(sqlite_url)
    accounts = Accounts(database)
    ada = await accounts.create_user("ada")
    await accounts.create_user("bob")
    _, ada_token = await accounts.create_token("ada")
    _, bob_token = await accounts.create_token("bob")
    await database.close()
    as_ada = {"Authorization": f"Bearer {ada_token}"}
    as_bob = {"Authorization": f"Bearer {bob_token}"}
    folder = tmp_path / "workspace" / "users" / ada.id / "docs"
    folder.mkdir(parents=True)
    (folder / "a.md").write_text("Ada's notes on engines.\n")
    config = make_config(tmp_path, sqlite_url, host="0.0.0.0")
    app = create_app(config, registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        made = await client.post("/api/collections", json={"name": "mine"}, headers=as_ada)
        assert made.status_code == 201, made.text
        collection_id = made.json()["id"]
        found = await indexed(client, collection_id, "docs/*.md", **as_ada)
        assert found["documents"] == 1  # in Ada's part of the workspace
        for method, path, body in (
            ("GET", f"/api/collections/{collection_id}", None),
            ("GET", f"/api/collections/{collection_id}/search?q=engines", None),
            ("POST", f"/api/collections/{collection_id}/documents", {"paths": ["*.md"]}),
            ("DELETE", f"/api/collections/{collection_id}", None),
        ):
            answer = await client.request(method, path, json=body, headers=as_bob)
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await client.get("/api/collections", headers=as_bob)).json()["items"] == []
        # Bob may have a collection of that name too.
        bobs = await client.post("/api/collections", json={"name": "mine"}, headers=as_bob)
        assert bobs.status_code == 201
        adas = await client.get(f"/api/collections/{collection_id}", headers=as_ada)
        assert adas.status_code == 200
