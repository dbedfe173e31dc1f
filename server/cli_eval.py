"""``nodeloom eval WORKFLOW_ID DATASET_ID [--variant NAME:NODE.PARAM=VALUE …] [--json]``
(SPEC §17): the workflow's current version (``current``) and each variant run over the dataset,
every output the rows expect checked with `equals` (``--evaluator`` for others), the progress
shown as it goes and a summary per variant at the end. Stored like an evaluation started
through the API."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import msgspec

from engine.evals.evaluators import Evaluator
from engine.evals.runner import Variant
from engine.models import ModelService
from engine.nodes.registry import NodeRegistry
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.evaluations import EvaluationStore
from server import cli_mcp
from server.cli_runs import UsageError
from server.evaluations import EvaluationRequest, Evaluations
from server.settings import read_settings

__all__ = ["add_command"]

POLL_S = 0.25
BASE = "current"


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], db_help: str
) -> None:
    evaluate = commands.add_parser(
        "eval", help="run a saved workflow and its variants over a dataset and score them"
    )
    evaluate.add_argument("workflow_id", metavar="WORKFLOW_ID")
    evaluate.add_argument("dataset_id", metavar="DATASET_ID")
    evaluate.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:NODE.PARAM=VALUE",
        help="a variant with a changed param (repeat a name to change several); VALUE is JSON "
        "when it parses, else text",
    )
    evaluate.add_argument(
        "--evaluator",
        action="append",
        default=[],
        metavar="JSON",
        help='an evaluator, e.g. \'{"output": "answer", "kind": "contains", "value": "42"}\' '
        "(default: equals on every output the rows expect)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the whole report as JSON")
    evaluate.add_argument("--db", metavar="URL", help=db_help)
    evaluate.set_defaults(handler=cli_mcp.using_mcp_tools(eval_command))


def variants(specs: list[str]) -> list[Variant]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for spec in specs:
        name, colon, change = spec.partition(":")
        target, equals, text = change.partition("=")
        node, dot, param = target.partition(".")
        if not (colon and equals and dot and name and node and param):
            raise UsageError(f"--variant needs NAME:NODE.PARAM=VALUE, got {spec}")
        if name == BASE:
            raise UsageError(f"--variant: {BASE!r} is the workflow as it is; name yours otherwise")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        found.setdefault(name, {}).setdefault(node, {})[param] = value
    return [Variant(name=BASE)] + [Variant(name=n, params=p) for n, p in found.items()]


def eval_command(args: argparse.Namespace, registry: NodeRegistry) -> int:
    report = cli_mcp.run(_evaluate(args, registry))
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
        return 0
    print(f"{'variant':<16} {'pass':>6} {'score':>6} {'tokens':>7} {'p50 ms':>8} "
          f"{'executed':>9} {'reused':>7}")  # fmt: skip
    for name, each in report["report"]["variants"].items():
        print(
            f"{name[:16]:<16} {each['pass_rate']:>6.0%} {each['mean_score']:>6.2f} "
            f"{each['tokens']:>7} {each['latency_p50_ms']:>8.1f} {each['executed_nodes']:>9} "
            f"{each['reused_nodes']:>7}"
        )
    print(f"evaluation {report['id']} {report['status']}", file=sys.stderr)
    return 0 if report["status"] == "done" else 1


async def _evaluate(args: argparse.Namespace, registry: NodeRegistry) -> dict[str, Any]:
    settings = read_settings(database_url=args.db)
    database = await Database.connect(settings.database_url)
    models = ModelService.from_env(os.environ)
    service = RunService(database, registry, models=models, workspace=settings.workspace)
    evaluations = Evaluations(
        service, EvaluationStore(database), lease_timeout_s=settings.lease_timeout_s
    )
    await evaluations.open(take_over=False)  # the heartbeat of the evaluation it runs
    try:
        dataset = await evaluations.store.dataset(args.dataset_id, owner_id=None)
        try:
            chosen = [msgspec.json.decode(text, type=Evaluator) for text in args.evaluator]
        except msgspec.DecodeError as exc:
            raise UsageError(f"--evaluator: {exc}") from None
        expected = sorted({name for row in dataset.rows for name in row.get("expected", {})})
        request = EvaluationRequest(
            workflow_id=args.workflow_id,
            dataset_id=args.dataset_id,
            variants=variants(args.variant),
            evaluators=chosen or [Evaluator(output=name, kind="equals") for name in expected],
        )
        stored = await evaluations.start(request, owner_id=None)
        waiting = asyncio.ensure_future(evaluations.wait(stored.id))
        while not waiting.done():
            await asyncio.wait([waiting], timeout=POLL_S)
            progress = (await evaluations.store.evaluation(stored.id, owner_id=None)).report
            done, total = progress["progress"]["done"], progress["progress"]["total"]
            print(f"\r{done}/{total} rows", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        final = await evaluations.store.evaluation(stored.id, owner_id=None)
        return dict(msgspec.to_builtins(final))
    finally:
        await evaluations.close()
        await service.close()
        await models.close()
        await database.close()
