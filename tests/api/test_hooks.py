"""Webhooks (SPEC §16): made, listed, rotated and deleted through the API; a call signed with
the secret starts a run as the hook's owner (202, or 200 with the finished run); a missing or
wrong signature, a body that is not JSON or inputs the workflow does not take start nothing;
another user's hook is 404. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.api.hooks import signature
from server.app import create_app
from tests.support.accounts import tokens_for
from tests.support.api import GREETING, make_config, saved
from tests.support.nodes import api_test_registry

Client = AsyncTestClient[Litestar]


async def call(
    client: Client, hook: dict[str, Any], body: bytes, *, secret: str | None = None, **params: Any
) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Nodeloom-Signature"] = signature(secret, body)
    return await client.post(hook["url"], content=body, headers=headers, params=params)


async def runs(client: Client, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/runs", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_signed_call_starts_a_run(client: Client) -> None:
    workflow_id = await saved(client)
    made = await client.post(f"/api/workflows/{workflow_id}/hooks")
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["id"].startswith("hook_")
    assert hook["url"] == f"/hooks/{hook['id']}"
    assert hook["secret"]
    listed = (await client.get(f"/api/workflows/{workflow_id}/hooks")).json()["items"]
    assert [item["id"] for item in listed] == [hook["id"]]
    assert "secret" not in listed[0]

    body = json.dumps({"name": "Ada"}).encode()
    started = await call(client, hook, body, secret=hook["secret"])
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    finished = await call(client, hook, body, secret=hook["secret"], wait="true")
    assert finished.status_code == 200, finished.text
    assert finished.json()["outputs"] == {"greeting": "Hello, Ada!"}
    assert finished.json()["trigger"] == f"webhook:{hook['id']}"
    first = (await client.get(f"/api/runs/{run_id}")).json()
    assert first["inputs"] == {"name": "Ada"}
    assert first["trigger"] == f"webhook:{hook['id']}"

    # The trigger filter: exactly, or by kind; other runs are left out.
    await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})
    assert len(await runs(client)) == 3
    by_hook = await runs(client, trigger=f"webhook:{hook['id']}")
    assert {run["id"] for run in by_hook} == {run_id, finished.json()["id"]}
    assert len(await runs(client, trigger="webhook")) == 2
    assert [run["trigger"] for run in await runs(client, trigger="api")] == ["api"]
    assert await runs(client, trigger="webhook:hook_other") == []
    assert await runs(client, trigger="web") == []


async def test_a_wrong_signature_starts_nothing(client: Client) -> None:
    workflow_id = await saved(client)
    hook = (await client.post(f"/api/workflows/{workflow_id}/hooks")).json()
    body = b'{"name": "Eve"}'
    unsigned = await call(client, hook, body)
    assert unsigned.status_code == 401
    assert unsigned.json()["errors"][0]["code"] == "invalid_signature"
    assert (await call(client, hook, body, secret="whsec_guess")).status_code == 401
    tampered = await client.post(
        hook["url"],
        content=b'{"name": "Mallory"}',
        headers={"X-Nodeloom-Signature": signature(hook["secret"], body)},
    )
    assert tampered.status_code == 401
    bare_hex = signature(hook["secret"], body).removeprefix("sha256=")
    headers = {"X-Nodeloom-Signature": bare_hex}
    assert (await client.post(hook["url"], content=body, headers=headers)).status_code == 401
    assert await runs(client) == []

    # A rotated secret: the old one stops working at once, the new one works.
    rotated = await client.post(f"/api/workflows/{workflow_id}/hooks/{hook['id']}/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != hook["secret"]
    assert (await call(client, hook, body, secret=hook["secret"])).status_code == 401
    assert (await call(client, hook, body, secret=rotated.json()["secret"])).status_code == 202

    deleted = await client.delete(f"/api/workflows/{workflow_id}/hooks/{hook['id']}")
    assert deleted.status_code == 204
    gone = await call(client, hook, body, secret=rotated.json()["secret"])
    assert gone.status_code == 404
    assert len(await runs(client)) == 1


async def test_bad_bodies_start_nothing(client: Client) -> None:
    workflow_id = await saved(client)
    hook = (await client.post(f"/api/workflows/{workflow_id}/hooks")).json()
    secret = hook["secret"]
    not_json = await call(client, hook, b"name=Ada", secret=secret)
    assert not_json.status_code == 422
    assert not_json.json()["errors"][0]["code"] == "invalid_json"
    a_list = await call(client, hook, b'["Ada"]', secret=secret)
    assert a_list.status_code == 422
    unknown = await call(client, hook, b'{"who": "Ada"}', secret=secret)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["code"] == "invalid_inputs"
    wrong_type = await call(client, hook, b'{"name": 3}', secret=secret, wait="true")
    assert wrong_type.status_code == 422
    assert await runs(client) == []
    # An empty body: no inputs, the defaults.
    empty = await call(client, hook, b"", secret=secret, wait="true")
    assert empty.status_code == 200, empty.text
    assert empty.json()["outputs"] == {"greeting": "Hello, world!"}


async def test_hooks_belong_to_their_owner(tmp_path: Path, database_url: str) -> None:
    ada, bob = await tokens_for(database_url, "ada", "bob")
    as_ada = {"Authorization": f"Bearer {ada}"}
    as_bob = {"Authorization": f"Bearer {bob}"}
    app = create_app(make_config(tmp_path, database_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        workflow = await client.post("/api/workflows", json=GREETING, headers=as_ada)
        workflow_id = workflow.json()["id"]
        base = f"/api/workflows/{workflow_id}/hooks"
        hook = (await client.post(base, headers=as_ada)).json()
        assert (await client.post(base, headers=as_bob)).status_code == 404
        assert (await client.get(base, headers=as_bob)).status_code == 404
        rotate = f"{base}/{hook['id']}/rotate"
        assert (await client.post(rotate, headers=as_bob)).status_code == 404
        assert (await client.delete(f"{base}/{hook['id']}", headers=as_bob)).status_code == 404
        # A hook of another workflow is not found under this one.
        other = await client.post("/api/workflows", json=GREETING, headers=as_ada)
        elsewhere = f"/api/workflows/{other.json()['id']}/hooks/{hook['id']}"
        assert (await client.delete(elsewhere, headers=as_ada)).status_code == 404

        # The call needs no token; its run is the hook owner's.
        body = b'{"name": "Ada"}'
        started = await call(client, hook, body, secret=hook["secret"])
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert (await client.get(f"/api/runs/{run_id}", headers=as_ada)).status_code == 200
        assert (await client.get(f"/api/runs/{run_id}", headers=as_bob)).status_code == 404
