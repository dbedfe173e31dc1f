"""The OpenAPI document and representative payloads as snapshots; `schemathesis run --checks
all` drives every operation with generated requests (a bounded number each, a fixed seed) against
a real server with a user and a token, and one in open local mode: any finding fails."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from syrupy.assertion import SnapshotAssertion

from engine.storage.accounts import Accounts
from engine.storage.database import Database
from server.app import create_app
from tests.support.api import LiveServer, make_config, saved
from tests.support.nodes import api_test_registry

Client = AsyncTestClient[Litestar]
EXAMPLES = 6  # generated requests per operation (and phase)
_VOLATILE = re.compile(
    r"^(wf|run|batch|ag)_[0-9a-f]{20}$|^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)$|^[0-9a-f]{64}$"
)


def stable(value: Any) -> Any:
    """Ids, timestamps and digests replaced by placeholders; durations by 0."""
    if isinstance(value, dict):
        return {
            key: 0.0 if key == "duration_ms" and value[key] is not None else stable(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [stable(item) for item in value]
    if isinstance(value, str) and _VOLATILE.match(value):
        return "<" + (value.split("_")[0] if "_" in value[:6] else "stamp-or-digest") + ">"
    return value


async def test_openapi_document(lite: Client, snapshot: SnapshotAssertion) -> None:
    response = await lite.get("/api/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "nodeloom"
    assert document == snapshot
    docs = await lite.get("/api/schema")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_representative_payloads(lite: Client, snapshot: SnapshotAssertion) -> None:
    workflow_id = await saved(lite)
    workflow = (await lite.get(f"/api/workflows/{workflow_id}")).json()
    run = (
        await lite.post(
            f"/api/workflows/{workflow_id}/runs", json={"inputs": {"name": "Ada"}, "wait": True}
        )
    ).json()
    problem = (await lite.get("/api/runs/run_00000000000000000000")).json()
    invalid = (
        await lite.post(
            "/api/workflows",
            json={
                "schema_version": 1,
                "name": "x",
                "nodes": [{"id": "a", "type": "template", "params": {"template": "{{ b }"}}],
            },
        )
    ).json()
    assert stable({"workflow": workflow, "run": run, "problem": problem, "invalid": invalid}) == (
        snapshot
    )


# What schemathesis counts as a refusal a request may get although the document allows it:
# 422 is a request that fits the document but not the records (a node the run does not have,
# inputs that do not fit the workflow's input nodes, two nodes with one id, a cron expression
# that does not parse), which a schema cannot say; 428 is RFC 6585's answer to a missing
# `If-Match`. A 400 always means the request breaks the document.
SCHEMATHESIS_CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2XX", "3XX", 401, 403, 404, 409, 422, 429]

[checks.missing_required_header]
expected-statuses = [400, 401, 403, 406, 415, 422, 428]
"""


def schemathesis_run(base_url: str, folder: Path, *options: str) -> None:
    """`schemathesis run --checks all` over every operation, a fixed seed, a few examples each;
    fails with its report on any finding."""
    config = folder / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(config), "run", f"{base_url}/api/schema/openapi.json",
        "--checks", "all", "--seed", "7", "--max-examples", str(EXAMPLES),
        "--phases", "examples,coverage,fuzzing,stateful", "--generation-database", "none",
        "--request-timeout", "10", "--no-color", *options,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_the_document_is_what_the_server_does(tmp_path: Path) -> None:
    """With a user and a token: every operation as the document declares it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/locked.db"

    async def user_with_token() -> str:
        database = await Database.connect(url)
        try:
            accounts = Accounts(database)
            await accounts.create_user("ada", "a long enough password")
            return (await accounts.create_token("ada"))[1]
        finally:
            await database.close()

    token = asyncio.run(user_with_token())
    app = create_app(make_config(tmp_path, url), registry=api_test_registry())
    with LiveServer(app, url) as server:
        document = httpx.get(f"{server.url}/api/schema/openapi.json").json()
        assert document["paths"]["/api/health"]["get"]["security"] == []
        assert document["paths"]["/api/auth/login"]["post"]["security"] == []
        assert document["paths"]["/api/workflows"]["get"]["security"] == [{"bearer": []}]
        schemathesis_run(server.url, tmp_path, "--header", f"Authorization: Bearer {token}")


def test_the_document_in_open_local_mode(live_server: LiveServer, tmp_path: Path) -> None:
    """No users: no operation needs a token, and the document says so."""
    document = httpx.get(f"{live_server.url}/api/schema/openapi.json").json()
    assert document["paths"]["/api/workflows"]["get"]["security"] == []
    schemathesis_run(live_server.url, tmp_path)


async def test_options_names_every_method_of_a_path(lite: Client) -> None:
    """Litestar's own OPTIONS answer named only the methods added before it was made."""
    for path, methods in (
        ("/api/workflows", "GET, OPTIONS, POST"),
        ("/api/workflows/wf_x", "DELETE, GET, OPTIONS, PUT"),
        ("/api/workflows/wf_x/view", "GET, OPTIONS, PUT"),
        ("/api/files/a/b.txt", "DELETE, GET, OPTIONS, PUT"),
    ):
        response = await lite.options(path)
        assert response.status_code == 204
        assert response.headers["allow"] == methods
