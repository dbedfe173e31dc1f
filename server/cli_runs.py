"""The CLI commands that store runs: run, rerun, resume, runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from engine.documents.document import Workflow, from_builtins
from engine.documents.inputs import coerce, input_schemas
from engine.documents.plan import Plan
from engine.errors import InputsInvalid, NodeloomError
from engine.execution.events import Listener
from engine.knowledge.service import Knowledge
from engine.models import ModelService
from engine.nodes.registry import NodeRegistry
from engine.records import RunRecord
from engine.runs.launch import RunHandle
from engine.runs.service import RunService
from engine.storage.database import Database
from server import cli_mcp
from server.progress import format_duration, make_display
from server.settings import read_settings
from server.state import attach_knowledge

EXIT_INTERRUPTED = 130  # the shell's code for "ended by Ctrl+C"
EXIT_WAITING = 3  # the run waits for a person's answer (it goes on when answered)
STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "interrupted": "yellow",
    "running": "blue",
    "waiting": "dark_orange",
    "queued": "dim",
}

Begin = Callable[[RunService, list[Listener]], Awaitable[RunHandle]]


class UsageError(NodeloomError):
    """A mistake of the user's (a missing file, a bad input): one line, exit 1, no traceback."""


def run(args: argparse.Namespace, registry: NodeRegistry, workflow: Workflow, plan: Plan) -> int:
    schemas = input_schemas(plan)
    given = {name: coerce(text, schemas.get(name, {})) for name, text in args.input}

    async def begin(service: RunService, listeners: list[Listener]) -> RunHandle:
        try:
            return await service.start(workflow, given, listeners=listeners, trigger="manual")
        except InputsInvalid as exc:
            raise UsageError(f"{args.file}: invalid inputs: {exc.detail}") from None

    return _execute(args, registry, begin, lambda _: plan)


def rerun(args: argparse.Namespace, registry: NodeRegistry) -> int:
    params: dict[str, dict[str, Any]] = {}
    for target, text in args.params:
        node, dot, param = target.partition(".")
        if not dot or not node or not param:
            raise UsageError(f"--set needs NODE.PARAM=VALUE, got {target}={text}")
        params.setdefault(node, {})[param] = _json_or_text(text)
    plans: dict[str, Plan] = {}

    async def begin(service: RunService, listeners: list[Listener]) -> RunHandle:
        inputs = _coerced_inputs(args.input, plans["parent"])
        if getattr(args, "on_miss", None) is not None:  # nodeloom replay
            return await service.replay(
                args.run_id,
                params=params,
                inputs=inputs,
                on_miss=args.on_miss,
                listeners=listeners,
                trigger="manual",
            )
        return await service.rerun(
            args.run_id,
            from_node=args.from_node,
            params=params,
            inputs=inputs,
            listeners=listeners,
            trigger="manual",
        )

    async def parent_plan(service: RunService) -> Plan:
        plans["parent"] = await service.run_plan(args.run_id)  # the rerun's own, read once
        return plans["parent"]

    return _execute(args, registry, begin, parent_plan)


def resume(args: argparse.Namespace, registry: NodeRegistry) -> int:
    async def begin(service: RunService, listeners: list[Listener]) -> RunHandle:
        return await service.resume(args.run_id, listeners=listeners)

    async def plan(service: RunService) -> Plan:
        row = await service.row(args.run_id)
        return service.plan(from_builtins(await service.store.snapshot(row)))

    return _execute(args, registry, begin, plan)


def _coerced_inputs(pairs: list[tuple[str, str]], plan: Plan) -> dict[str, Any]:
    schemas = input_schemas(plan)
    return {name: coerce(text, schemas.get(name, {})) for name, text in pairs}


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _execute(
    args: argparse.Namespace,
    registry: NodeRegistry,
    begin: Begin,
    plan_of: Callable[[RunService], Awaitable[Plan] | Plan],
) -> int:
    try:
        work = _drive(args, registry, begin, plan_of)
        record = cli_mcp.run(work)
    except KeyboardInterrupt:  # a second Ctrl+C: the run is left to be recovered and resumed
        print("interrupted; `nodeloom resume` can finish the run", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(record), indent=2).decode())
        sys.stdout.write("\n")
    else:
        for name, value in record.outputs.items():
            text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
            print(f"{name}: {text}")
    return _summary(record)


async def _drive(
    args: argparse.Namespace,
    registry: NodeRegistry,
    begin: Begin,
    plan_of: Callable[[RunService], Awaitable[Plan] | Plan],
) -> RunRecord:
    settings = read_settings(database_url=args.db)
    models = ModelService.from_env(os.environ)
    database = await Database.connect(settings.database_url)
    service = RunService(
        database,
        registry,
        max_concurrency=args.concurrency,
        models=models,
        workspace=settings.workspace,
        lease_timeout_s=settings.lease_timeout_s,
        max_items=settings.map_max_items,
    )
    knowledge = attach_knowledge(service, Knowledge(database, models, workspace=settings.workspace))
    try:
        await service.recover()
        plan = plan_of(service)
        if not isinstance(plan, Plan):
            plan = await plan
        live = sys.stdout.isatty() and sys.stderr.isatty()
        with make_display(plan, live=live) as display:
            active = await begin(service, [display])
            loop = asyncio.get_running_loop()
            try:
                loop.add_signal_handler(signal.SIGINT, _cancel_once, loop, active)
                installed = True
            except (NotImplementedError, RuntimeError):  # not the main thread
                installed = False
            try:
                record = await active.wait()
            finally:
                if installed:
                    loop.remove_signal_handler(signal.SIGINT)
            display.finish(record)
        return record
    finally:
        await service.close()
        await knowledge.close()
        await models.close()
        await database.close()


def _cancel_once(loop: asyncio.AbstractEventLoop, active: RunHandle) -> None:
    """The first Ctrl+C cancels the run cleanly; a second one interrupts at once."""
    loop.remove_signal_handler(signal.SIGINT)
    active.cancel()


def _summary(record: RunRecord) -> int:
    """Say how the run ended, on stderr, and give the exit code."""
    if record.status == "succeeded":
        start, end = record.started_at, record.finished_at
        took = format_duration((end - start).total_seconds() * 1000) if start and end else "?"
        print(f"run {record.id} succeeded in {took}", file=sys.stderr)
        return 0
    if record.status == "cancelled":
        print(f"run {record.id} cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    if record.status == "waiting":
        nodes = ", ".join(n for n, state in record.nodes.items() if state.status == "waiting")
        print(
            f"run {record.id} waits for an answer to {nodes}: answer in the canvas's Inbox, or "
            f"POST /api/runs/{record.id}/nodes/NODE/answer",
            file=sys.stderr,
        )
        return EXIT_WAITING
    print(f"run {record.id} {record.status}: {record.error}", file=sys.stderr)
    return 1


# -- runs -------------------------------------------------------------------------------------


def runs(args: argparse.Namespace, registry: NodeRegistry) -> int:
    cli_mcp.run(_runs(args, registry))
    return 0


async def _runs(args: argparse.Namespace, registry: NodeRegistry) -> None:
    settings = read_settings(database_url=args.db)
    database = await Database.connect(settings.database_url)
    service = RunService(database, registry, lease_timeout_s=settings.lease_timeout_s)
    terminal = Console().is_terminal
    console = Console(highlight=False, width=None if terminal else 10_000)
    try:
        await service.recover()
        if args.tree:
            console.print(_draw_tree(await service.tree(args.tree), args.tree))
            return
        page = await service.store.list_runs(status=args.status, limit=args.limit)
        columns = ("run", "status", "workflow", "created", "parent", "from")
        rows = [
            (
                r.id,
                r.status,
                r.workflow_name,
                f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                r.parent_run_id or "-",
                r.from_node or "-",
            )
            for r in page.items
        ]
        if not terminal:  # for scripts: tab-separated, nothing cut short
            for row in [columns, *rows]:
                print("\t".join(row))
            return
        table = Table(box=None, pad_edge=False)
        for column in columns:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(row[0], _status(row[1]), *row[2:])
        console.print(table if rows else "no runs yet")
    finally:
        await service.close()
        await database.close()


def _status(status: str) -> str:
    return f"[{STATUS_STYLES.get(status, '')}]{status}[/]"


def _label(node: dict[str, Any], marked: str) -> str:
    parts = [
        f"[bold]{node['id']}[/]",
        _status(node["status"]),
        f"{node['created_at']:%Y-%m-%d %H:%M:%S}",
    ]
    if node["from_node"]:
        parts.append(f"from {node['from_node']}")
    changed = node["changed"]
    settings = [
        f"{node_id}.{name}={json.dumps(value)}"
        for node_id, params in changed.get("params", {}).items()
        for name, value in params.items()
    ]
    settings += [
        f"input {name}={json.dumps(value)}" for name, value in changed.get("inputs", {}).items()
    ]
    parts += [escape(setting) for setting in settings]
    if node["id"] == marked:
        parts.append("[reverse] ◀ [/]")
    return "  ".join(parts)


def _draw_tree(root: dict[str, Any], marked: str) -> Tree:
    tree = Tree(_label(root, marked))
    pending = [(tree, root)]
    while pending:
        branch, node = pending.pop()
        pending.extend((branch.add(_label(child, marked)), child) for child in node["children"])
    return tree
