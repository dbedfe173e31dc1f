"""`nodeloom test` (SPEC §17) as CI runs it: a real subprocess replaying the pinned runs of a
saved workflow against its current version. It passes while the outputs are as pinned, fails
with a readable diff when a change alters an output, and fails naming the node when a recorded
tool would have to be called again; JUnit XML says the same."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from engine.documents.document import from_builtins
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.cli import database, nodeloom
from tests.support.nodes import test_registry

__all__ = ["database"]  # the autouse fixture giving each test its own database


def document(expression: str, shown: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": "Sums",
        "nodes": [
            {"id": "n", "type": "input", "params": {"name": "n", "default": 6}},
            {"id": "args", "type": "template",
             "params": {"template": '{"expression": "' + expression + '"}', "format": "json"}},
            {"id": "calc", "type": "tool", "params": {"tool": "calculator"}},
            {"id": "say", "type": "template", "params": {"template": shown}},
            {"id": "out", "type": "output", "params": {"name": "said"}},
        ],
        "edges": [
            {"from": "n.value", "to": "args.n"},
            {"from": "args.json", "to": "calc.args"},
            {"from": "calc.result", "to": "say.r"},
            {"from": "say.text", "to": "out.value"},
        ],
    }  # fmt: skip


async def pinned_run(url: str, tmp_path: Path) -> tuple[str, str]:
    """A saved workflow, a run of it, pinned; their ids."""
    db = await Database.connect(url)
    service = RunService(db, test_registry(), workspace=tmp_path)
    try:
        first = from_builtins(document("{{ n }} * 7", "is {{ r }}"))
        saved = await service.store.create_workflow(first)
        run = await (
            await service.start(
                from_builtins(saved.document),
                workflow_id=saved.id,
                workflow_version=saved.version,
            )
        ).wait()
        assert run.outputs == {"said": "is 42"}
        await service.store.pin(run.id, pinned=True)
        return saved.id, run.id
    finally:
        await service.close()
        await db.close()


async def save_version(url: str, workflow_id: str, new: dict[str, Any]) -> None:
    db = await Database.connect(url)
    try:
        service = RunService(db, test_registry())
        current = await service.store.current_version(workflow_id)
        await service.store.save_workflow(
            workflow_id, from_builtins(new), expected_version=current
        )
        await service.close()
    finally:
        await db.close()


def test_pinned_runs_are_a_regression_suite(database: str, tmp_path: Path) -> None:
    workflow_id, run_id = asyncio.run(pinned_run(database, tmp_path))
    junit = tmp_path / "junit.xml"

    passing = nodeloom("test", "--junit", junit)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert f"ok   Sums · run {run_id}" in passing.stdout
    assert "1 passed, 0 failed" in passing.stderr
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")

    # A change after the tool: replayed fine, but the output is not as pinned.
    asyncio.run(save_version(database, workflow_id, document("{{ n }} * 7", "= {{ r }}")))
    differs = nodeloom("test", workflow_id, "--junit", junit)
    assert differs.returncode == 1
    assert "outputs differ:" in differs.stdout
    assert '-  "said": "is 42"' in differs.stdout
    assert '+  "said": "= 42"' in differs.stdout
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == "outputs differ:"

    # A change upstream of the tool: the recorded call no longer stands, nothing is called.
    asyncio.run(save_version(database, workflow_id, document("{{ n }} * 8", "is {{ r }}")))
    missed = nodeloom("test")
    assert missed.returncode == 1
    assert "node calc: replay of run" in missed.stdout
    assert "upstream changed: args" in missed.stdout

    assert nodeloom("test", "wf_nothing").returncode == 0  # no pinned runs: nothing fails
