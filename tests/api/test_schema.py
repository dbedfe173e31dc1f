"""The OpenAPI document and representative payloads as snapshots; schemathesis drives every
operation with generated requests (a bounded number each): no 500s, answers match the schema."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar import Litestar
from litestar.testing import AsyncTestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from syrupy.assertion import SnapshotAssertion

from tests.support.api import LiveServer, saved

Client = AsyncTestClient[Litestar]
EXAMPLES = 10  # generated requests per operation
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


def test_generated_requests(live_server: LiveServer) -> None:
    """Each operation gets a few generated requests (examples first); any failure names it."""
    api = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/openapi.json")
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(base_url=live_server.url, checks=checks, timeout=10)

        check()
