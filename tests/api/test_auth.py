"""Bearer tokens: open local mode only on loopback with no users; otherwise 401 without a valid
token, and each user sees only their own records (404 for another's); on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from litestar.testing import AsyncTestClient

from engine.storage.accounts import Accounts
from engine.storage.database import Database
from server.app import create_app
from server.cli import main
from tests.support.accounts import tokens_for
from tests.support.api import GREETING, make_config
from tests.support.nodes import api_test_registry


async def test_users_see_only_their_own(tmp_path: Path, database_url: str) -> None:
    ada, bob = await tokens_for(database_url, "ada", "bob")
    app = create_app(make_config(tmp_path, database_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        as_ada = {"Authorization": f"Bearer {ada}"}
        as_bob = {"Authorization": f"Bearer {bob}"}
        assert (await client.get("/api/health")).status_code == 200
        missing = await client.get("/api/workflows")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.headers["content-type"].startswith("application/problem+json")
        wrong = await client.get("/api/workflows", headers={"Authorization": "Bearer nl_wrong"})
        assert wrong.status_code == 401
        basic = await client.get("/api/workflows", headers={"Authorization": "Basic YTpi"})
        assert basic.status_code == 401
        assert (await client.get("/v1/models")).status_code == 401

        created = await client.post("/api/workflows", json=GREETING, headers=as_ada)
        workflow_id = created.json()["id"]
        run = await client.post(
            f"/api/workflows/{workflow_id}/runs", json={"wait": True}, headers=as_ada
        )
        run_id = run.json()["id"]
        assert (
            await client.get(f"/api/workflows/{workflow_id}", headers=as_bob)
        ).status_code == 404
        assert (await client.get(f"/api/runs/{run_id}", headers=as_bob)).status_code == 404
        assert (await client.get(f"/api/runs/{run_id}/events", headers=as_bob)).status_code == 404
        assert (
            await client.post(f"/api/workflows/{workflow_id}/runs", json={}, headers=as_bob)
        ).status_code == 404
        assert (await client.get("/api/workflows", headers=as_bob)).json()["items"] == []
        assert (await client.get("/api/runs", headers=as_bob)).json()["items"] == []
        assert len((await client.get("/api/runs", headers=as_ada)).json()["items"]) == 1

        agent = await client.post(
            "/api/agents", json={"name": "helper", "model": "remote"}, headers=as_ada
        )
        agent_id = agent.json()["id"]
        assert (await client.get(f"/api/agents/{agent_id}", headers=as_bob)).status_code == 404
        assert (await client.get("/api/agents", headers=as_bob)).json()["items"] == []
        batch = await client.post(
            f"/api/workflows/{workflow_id}/runs/batch",
            json={"inputs": [{}], "wait": True},
            headers=as_ada,
        )
        batch_id = batch.json()["id"]
        assert (await client.get(f"/api/batches/{batch_id}", headers=as_bob)).status_code == 404
        assert (await client.get(f"/api/batches/{batch_id}", headers=as_ada)).status_code == 200

        await client.put("/api/files/notes.txt", content=b"ada's", headers=as_ada)
        assert (await client.get("/api/files/notes.txt", headers=as_bob)).status_code == 404
        assert (await client.get("/api/files/notes.txt", headers=as_ada)).content == b"ada's"


async def test_open_local_mode(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/api/workflows")).status_code == 200
        # OpenAI clients always send some key: open mode ignores it.
        anything = {"Authorization": "Bearer sk-anything"}
        assert (await client.get("/api/workflows", headers=anything)).status_code == 200


async def test_not_open_off_loopback(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url, host="0.0.0.0")
    app = create_app(config, registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        with structlog.testing.capture_logs() as logs:
            assert (await client.get("/api/workflows")).status_code == 401
        assert (await client.get("/api/health")).status_code == 200
    # The request's log line has the status the client got.
    assert [line["status"] for line in logs if line["event"] == "request"] == [401]


def test_cli_creates_users_and_tokens(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "create", "grace", "--db", sqlite_url]) == 0
    assert "user grace created" in capsys.readouterr().out
    assert main(["users", "create", "grace", "--db", sqlite_url]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["tokens", "create", "grace", "--db", sqlite_url]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("nl_")
    assert len(token) > 30
    assert main(["tokens", "create", "nobody", "--db", sqlite_url]) == 1
    assert "no user named 'nobody'" in capsys.readouterr().err

    async def check() -> None:
        database = await Database.connect(sqlite_url)
        try:
            accounts = Accounts(database)
            user = await accounts.user_for_token(token)
            assert user is not None
            assert user.name == "grace"
            async with database.engine.connect() as connection:
                stored = (
                    await connection.exec_driver_sql("SELECT token_hash FROM api_tokens")
                ).all()
            assert token not in str(stored)  # only the hash is kept
        finally:
            await database.close()

    import asyncio

    asyncio.run(check())


async def test_a_users_file_nodes_work_in_their_own_folder(
    tmp_path: Path, database_url: str
) -> None:
    ada, bob = await tokens_for(database_url, "ada", "bob")
    app = create_app(make_config(tmp_path, database_url), registry=api_test_registry())
    reader = {
        "schema_version": 1, "name": "Reader",
        "nodes": [
            {"id": "read", "type": "file_read", "params": {"path": "secret.txt"}},
            {"id": "out", "type": "output", "params": {"name": "content"}},
        ],
        "edges": [{"from": "read.content", "to": "out.value"}],
    }
    async with AsyncTestClient(app=app) as client:
        as_ada = {"Authorization": f"Bearer {ada}"}
        as_bob = {"Authorization": f"Bearer {bob}", "Content-Type": "application/octet-stream"}
        put = await client.put("/api/files/secret.txt", content=b"bob's", headers=as_bob)
        assert put.status_code == 201
        created = await client.post("/api/workflows", json=reader, headers=as_ada)
        run = await client.post(
            f"/api/workflows/{created.json()['id']}/runs", json={"wait": True}, headers=as_ada
        )
        assert run.json()["status"] == "failed"  # ada's folder has no secret.txt
        assert "bob's" not in run.text
        ada_files = {"Authorization": f"Bearer {ada}", "Content-Type": "application/octet-stream"}
        await client.put("/api/files/secret.txt", content=b"ada's", headers=ada_files)
        run = await client.post(
            f"/api/workflows/{created.json()['id']}/runs", json={"wait": True}, headers=as_ada
        )
        assert run.json()["outputs"] == {"content": "ada's"}
