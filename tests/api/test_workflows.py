"""Workflows over the API: create, read with ETag, save with If-Match, versions, view state,
validation; on SQLite and PostgreSQL."""

from __future__ import annotations

import copy

from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.api.hooks import signature
from tests.support.api import GREETING, saved

Client = AsyncTestClient[Litestar]


async def test_create_read_and_save_versions(client: Client) -> None:
    created = await client.post("/api/workflows", json=GREETING)
    assert created.status_code == 201
    body = created.json()
    assert body["version"] == 1
    assert body["id"].startswith("wf_")
    assert created.headers["etag"] == '"1"'
    assert body["document"]["name"] == "Greeting"
    assert {"id", "version", "updated_at", "document"} <= set(body)

    read = await client.get(f"/api/workflows/{body['id']}")
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"'

    changed = copy.deepcopy(GREETING)
    changed["name"] = "Greeting 2"
    missing = await client.put(f"/api/workflows/{body['id']}", json=changed)
    assert missing.status_code == 428
    assert missing.headers["content-type"].startswith("application/problem+json")

    saved_v2 = await client.put(
        f"/api/workflows/{body['id']}", json=changed, headers={"If-Match": '"1"'}
    )
    assert saved_v2.status_code == 200, saved_v2.text
    assert saved_v2.json()["version"] == 2
    assert saved_v2.headers["etag"] == '"2"'

    stale = await client.put(
        f"/api/workflows/{body['id']}", json=GREETING, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 409
    assert "is at version 2, not 1" in stale.json()["detail"]
    current = await client.get(f"/api/workflows/{body['id']}")
    assert current.json()["document"]["name"] == "Greeting 2"  # the stale save wrote nothing

    versions = await client.get(f"/api/workflows/{body['id']}/versions")
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]
    first = await client.get(f"/api/workflows/{body['id']}/versions/1")
    assert first.json()["document"]["name"] == "Greeting"
    assert (await client.get(f"/api/workflows/{body['id']}/versions/9")).status_code == 404


async def test_bad_or_repeated_ids_are_refused_with_every_issue(client: Client) -> None:
    bad = copy.deepcopy(GREETING)
    bad["nodes"].append({"id": "greet", "type": "template", "params": {"template": "x"}})
    bad["nodes"].append({"id": "9 bad", "type": "nope"})
    bad["edges"].append({"from": "greeting.value", "to": "greet.name"})
    response = await client.post("/api/workflows", json=bad)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    codes = {error["code"] for error in problem["errors"]}
    assert codes == {"duplicate_node_id", "invalid_id"}
    assert all({"code", "message", "node", "port", "path"} <= set(e) for e in problem["errors"])
    assert (await client.get("/api/workflows")).json()["items"] == []  # nothing was saved

    unknown_field = copy.deepcopy(GREETING)
    unknown_field["nodes"][0]["colour"] = "red"
    response = await client.post("/api/workflows", json=unknown_field)
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "/nodes/0/colour"


async def test_validate_reports_without_saving(client: Client) -> None:
    ok = await client.post("/api/workflows/validate", json=GREETING)
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "errors": []}
    cyclic = copy.deepcopy(GREETING)
    cyclic["nodes"].insert(1, {"id": "t2", "type": "template", "params": {"template": "{{ a }}"}})
    cyclic["edges"] += [{"from": "greet.text", "to": "t2.a"}]
    cyclic["edges"][0] = {"from": "t2.text", "to": "greet.name"}
    result = (await client.post("/api/workflows/validate", json=cyclic)).json()
    assert result["valid"] is False
    cycle = next(e for e in result["errors"] if e["code"] == "cycle")
    assert "greet" in cycle["message"]
    assert "t2" in cycle["message"]
    garbage = (await client.post("/api/workflows/validate", json={"nodes": 3})).json()
    assert garbage["valid"] is False
    assert garbage["errors"][0]["code"] == "invalid_document"


async def test_list_pages_and_delete(client: Client) -> None:
    ids = {await saved(client) for _ in range(3)}
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/workflows", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)
    gone = seen[0]
    assert (await client.delete(f"/api/workflows/{gone}")).status_code == 204
    assert (await client.get(f"/api/workflows/{gone}")).status_code == 404
    assert (await client.delete(f"/api/workflows/{gone}")).status_code == 404


async def test_view_state(client: Client) -> None:
    workflow_id = await saved(client)
    default = await client.get(f"/api/workflows/{workflow_id}/view")
    assert default.json() == {
        "zoom": 1.0,
        "pan": {"x": 0.0, "y": 0.0},
        "selection": [],
        "panels": [],
    }
    view = {"zoom": 1.5, "pan": {"x": 10, "y": -4}, "selection": ["greet"], "panels": ["history"]}
    assert (await client.put(f"/api/workflows/{workflow_id}/view", json=view)).status_code == 200
    assert (await client.get(f"/api/workflows/{workflow_id}/view")).json()["selection"] == ["greet"]
    bad = await client.put(f"/api/workflows/{workflow_id}/view", json={"zoom": -1})
    assert bad.status_code == 400
    assert (await client.get("/api/workflows/wf_nope/view")).status_code == 404


async def test_the_ports_of_a_body_node_are_its_bodys(client: Client) -> None:
    body = {
        "nodes": [
            {
                "id": "text",
                "type": "input",
                "params": {"name": "text", "schema": {"type": "string"}},
            },
            {"id": "out", "type": "output", "params": {"name": "short"}},
        ],
        "edges": [{"from": "text.value", "to": "out.value"}],
    }
    asked = {
        "nodes": {
            "m": {"type": "map", "params": {"graph": "cut"}},
            "lp": {"type": "loop", "params": {"graph": "cut", "max_iterations": 2}},
            "lost": {"type": "subgraph", "params": {"graph": "nowhere"}},
        },
        "subgraphs": {"cut": body},
    }
    answer = await client.post("/api/node-types/ports", json=asked)
    assert answer.status_code == 200
    nodes = answer.json()["nodes"]
    names = {
        node: [[p["name"] for p in nodes[node][side]] for side in ("inputs", "outputs")]
        for node in nodes
    }
    assert names == {
        "m": [["items"], ["short", "errors"]],
        "lp": [["text"], ["short", "iterations"]],
    }
    assert nodes["m"]["outputs"][0]["type"] == "array"


async def test_a_workflow_runs_a_saved_one_and_may_not_run_itself(client: Client) -> None:
    callee = (await client.post("/api/workflows", json=GREETING)).json()
    caller = {
        "schema_version": 1,
        "name": "Greets through another",
        "nodes": [
            {"id": "s", "type": "subgraph", "params": {"workflow": callee["id"]}},
            {"id": "out", "type": "output", "params": {"name": "greeting"}},
        ],
        "edges": [{"from": "s.greeting", "to": "out.value"}],
    }
    created = await client.post("/api/workflows", json=caller)
    assert created.status_code == 201, created.text
    assert created.json()["document"]["nodes"][0]["params"] == {"workflow": callee["id"]}
    run = await client.post(f"/api/workflows/{created.json()['id']}/runs", json={"wait": True})
    assert run.status_code in (200, 201), run.text
    assert run.json()["outputs"] == {"greeting": "Hello, world!"}
    # The callee, saved again to run its caller, would run itself.
    looping = copy.deepcopy(caller)
    looping["nodes"][0]["params"] = {"workflow": created.json()["id"]}
    draft = await client.put(
        f"/api/workflows/{callee['id']}", json=looping, headers={"If-Match": '"1"'}
    )
    assert draft.status_code == 200  # saved as a draft, not run
    (error,) = draft.json()["issues"]
    assert error["code"] == "recursive_workflow"
    refused = await client.post(f"/api/workflows/{callee['id']}/runs", json={"wait": True})
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["recursive_workflow"]
    unknown = copy.deepcopy(caller)
    unknown["nodes"][0]["params"] = {"workflow": "wf_nothing"}
    result = (await client.post("/api/workflows/validate", json=unknown)).json()
    assert [e["code"] for e in result["errors"]] == ["unknown_workflow"]


async def test_a_draft_with_issues_is_saved_and_its_runs_are_refused(client: Client) -> None:
    draft = copy.deepcopy(GREETING)
    draft["edges"] = [{"from": "greet.text", "to": "greeting.value"}]  # greet.name unconnected
    draft["nodes"].append({"id": "odd", "type": "nope"})
    created = await client.post("/api/workflows", json=draft)
    assert created.status_code == 201, created.text
    body = created.json()
    issues = {(issue["code"], issue["node"], issue["port"]) for issue in body["issues"]}
    assert issues == {("missing_input", "greet", "name"), ("unknown_node_type", "odd", None)}
    assert all(issue["path"].startswith("/") for issue in body["issues"])
    assert body["version"] == 1
    read = (await client.get(f"/api/workflows/{body['id']}")).json()
    assert read["document"] == draft
    # A run of it is refused, every issue named; nothing is stored.
    run = await client.post(f"/api/workflows/{body['id']}/runs", json={"wait": True})
    assert run.status_code == 422, run.text
    assert {(e["code"], e["node"]) for e in run.json()["errors"]} == {
        ("missing_input", "greet"), ("unknown_node_type", "odd")}
    hook = (await client.post(f"/api/workflows/{body['id']}/hooks")).json()
    by_hook = await client.post(hook["url"], content=b"{}", headers={
        "X-Nodeloom-Signature": signature(hook["secret"], b"{}")})
    assert by_hook.status_code == 422, by_hook.text
    assert {e["code"] for e in by_hook.json()["errors"]} == {"missing_input", "unknown_node_type"}
    assert (await client.get("/api/runs", params={"workflow_id": body["id"]})).json()[
        "items"] == []
    # Fixed, it saves with no issue and runs.
    fixed = await client.put(
        f"/api/workflows/{body['id']}", json=GREETING, headers={"If-Match": '"1"'}
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["issues"] == []
    run = await client.post(f"/api/workflows/{body['id']}/runs", json={"wait": True})
    assert run.json()["outputs"] == {"greeting": "Hello, world!"}


async def test_tags_round_trip_and_leave_cache_keys_alone(client: Client) -> None:
    tagged = copy.deepcopy(GREETING) | {"tags": ["demo", "greeting"]}
    created = (await client.post("/api/workflows", json=tagged)).json()
    assert created["document"]["tags"] == ["demo", "greeting"]
    first = await client.post(f"/api/workflows/{created['id']}/runs", json={"wait": True})
    retagged = tagged | {"tags": ["other"]}
    saved_v2 = await client.put(
        f"/api/workflows/{created['id']}", json=retagged, headers={"If-Match": '"1"'}
    )
    assert saved_v2.status_code == 200
    second = await client.post(f"/api/workflows/{created['id']}/runs", json={"wait": True})
    keys = [{n: s["cache_key"] for n, s in r.json()["nodes"].items()} for r in (first, second)]
    assert keys[0] == keys[1]
    not_a_list = await client.post("/api/workflows", json=tagged | {"tags": "demo"})
    assert not_a_list.status_code == 400
    assert not_a_list.json()["errors"][0]["path"] == "/tags"


async def test_the_list_says_what_each_workflow_is_and_searches(client: Client) -> None:
    greeting = (await client.post("/api/workflows", json=GREETING | {
        "description": "Says hello to someone", "tags": ["demo"]})).json()
    other = (await client.post("/api/workflows", json=GREETING | {
        "name": "Farewell", "tags": ["demo", "sad"]})).json()
    await client.post(f"/api/workflows/{greeting['id']}/runs", json={"wait": True})
    last = (await client.post(f"/api/workflows/{greeting['id']}/runs", json={"wait": True}))
    items = (await client.get("/api/workflows")).json()["items"]
    by_id = {item["id"]: item for item in items}
    assert by_id[greeting["id"]]["description"] == "Says hello to someone"
    assert by_id[greeting["id"]]["node_count"] == 3
    assert by_id[greeting["id"]]["last_run"]["id"] == last.json()["id"]
    assert by_id[greeting["id"]]["last_run"]["status"] == "succeeded"
    assert by_id[other["id"]]["last_run"] is None
    assert by_id[other["id"]]["tags"] == ["demo", "sad"]

    async def found(**params: str) -> list[str]:
        return [i["id"] for i in (await client.get("/api/workflows", params=params)).json()[
            "items"]]

    assert await found(q="HELLO someone") == [greeting["id"]]  # words of the description
    assert await found(q="farew") == [other["id"]]
    assert await found(tag="sad") == [other["id"]]
    assert await found(tag="demo") == [other["id"], greeting["id"]]
    assert await found(tag="demo", q="nothing") == []
    first = (await client.get("/api/workflows", params={"tag": "demo", "limit": 1})).json()
    assert [i["id"] for i in first["items"]] == [other["id"]]
    rest = await found(tag="demo", limit="1", cursor=first["next_cursor"])
    assert rest == [greeting["id"]]
