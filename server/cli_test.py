"""``nodeloom test [WORKFLOW_ID …] [--junit FILE]`` (SPEC §17): each pinned run replayed against
its workflow's current version. A case fails on a replay miss (a recorded node whose inputs or
params changed: no model is called) or on an output that differs, shown as a diff. Runs in any
CI without a model; exit 1 on any failure."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.documents.document import from_builtins
from engine.errors import NodeloomError
from engine.nodes.registry import NodeRegistry
from engine.records import RunRecord
from engine.runs.service import RunService
from engine.storage.database import Database
from server import cli_mcp
from server.settings import read_settings

__all__ = ["add_command"]


@dataclass
class Case:
    """One pinned run, replayed."""

    workflow: str
    run_id: str
    seconds: float = 0.0
    replay_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.workflow} · run {self.run_id}"


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], db_help: str
) -> None:
    test = commands.add_parser(
        "test",
        help="replay every pinned run against its workflow's current version; exit 1 when an "
        "output differs or a recorded model or tool would be called",
    )
    test.add_argument("workflow_ids", nargs="*", metavar="WORKFLOW_ID", help="default: all")
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML there")
    test.add_argument("--db", metavar="URL", help=db_help)
    test.set_defaults(handler=cli_mcp.using_mcp_tools(test_command))


def test_command(args: argparse.Namespace, registry: NodeRegistry) -> int:
    cases = asyncio.run(_replay_pinned(args, registry))
    for case in cases:
        verdict = "FAIL" if case.problems else "ok  "
        print(f"{verdict} {case.name} ({case.seconds * 1000:.0f} ms)")
        for problem in case.problems:
            print("     " + problem.replace("\n", "\n     "))
    failed = sum(bool(case.problems) for case in cases)
    if not cases:
        print("no pinned runs (pin one: POST /api/runs/RUN_ID/pin)", file=sys.stderr)
    else:
        print(f"{len(cases) - failed} passed, {failed} failed", file=sys.stderr)
    if args.junit is not None:
        write_junit(args.junit, cases)
    return 1 if failed else 0


async def _replay_pinned(args: argparse.Namespace, registry: NodeRegistry) -> list[Case]:
    settings = read_settings(database_url=args.db)
    database = await Database.connect(settings.database_url)
    service = RunService(database, registry, workspace=settings.workspace)  # no models
    cases = []
    try:
        for pinned in await service.store.pinned(args.workflow_ids):
            case = Case(workflow=pinned.workflow_name, run_id=pinned.id)
            cases.append(case)
            started = time.perf_counter()
            await _replay(service, pinned.id, pinned.workflow_id, case)
            case.seconds = time.perf_counter() - started
    finally:
        await service.close()
        await database.close()
    return cases


async def _replay(service: RunService, run_id: str, workflow_id: str | None, case: Case) -> None:
    original = await service.get(run_id)
    try:
        workflow, version = None, None
        if workflow_id is not None:
            record = await service.store.get_workflow(workflow_id)
            workflow, version = from_builtins(record.document), record.version
        handle = await service.replay(
            run_id, workflow=workflow, version=version, caller_waits=True, trigger="manual"
        )
        replay = await handle.wait()
    except NodeloomError as exc:
        case.problems.append(f"cannot replay: {exc.detail}")
        return
    case.replay_id = replay.id
    case.problems += _misses(replay)
    if replay.status == "succeeded" and replay.outputs != original.outputs:
        case.problems.append("outputs differ:\n" + diff(original.outputs, replay.outputs))


def _misses(replay: RunRecord) -> list[str]:
    if replay.status == "succeeded":
        return []
    failed = [
        f"node {node}: {state.error}"
        for node, state in replay.nodes.items()
        if state.status == "failed"
    ]
    return failed or [f"replay {replay.id} {replay.status}: {replay.error}"]


def diff(expected: Any, found: Any) -> str:
    """The outputs as pinned against as replayed, line by line (JSON)."""
    before = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    after = json.dumps(found, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    lines = difflib.unified_diff(before, after, "pinned", "replayed", lineterm="")
    return "\n".join(lines)


def write_junit(path: Path, cases: list[Case]) -> None:
    failures = sum(bool(case.problems) for case in cases)
    suite = ET.Element(
        "testsuite",
        name="nodeloom",
        tests=str(len(cases)),
        failures=str(failures),
        time=f"{sum(case.seconds for case in cases):.3f}",
    )
    for case in cases:
        element = ET.SubElement(
            suite,
            "testcase",
            classname=case.workflow,
            name=f"run {case.run_id}",
            time=f"{case.seconds:.3f}",
        )
        if case.problems:
            failure = ET.SubElement(element, "failure", message=case.problems[0].splitlines()[0])
            failure.text = "\n".join(case.problems)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
