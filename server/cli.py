"""`nodeloom` on the command line: validate and run workflow files, rerun and browse runs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import structlog

from engine.documents.document import Workflow, decode_workflow
from engine.documents.graph import analyse
from engine.documents.plan import Plan
from engine.errors import NodeloomError, WorkflowInvalid
from engine.execution.executor import DEFAULT_CONCURRENCY
from engine.models import ModelRegistry
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from engine.runs.saved_bodies import names_saved, with_saved_bodies
from engine.storage.database import Database
from engine.storage.repository import Store
from server import (
    cli_collections,
    cli_discover,
    cli_eval,
    cli_mcp,
    cli_models,
    cli_runs,
    cli_serve,
    cli_test,
    cli_worker,
)
from server.cli_runs import UsageError
from server.plugins import installed_registry
from server.settings import read_settings

Handler = Callable[[argparse.Namespace, NodeRegistry], int]


def main(argv: Sequence[str] | None = None, *, registry: NodeRegistry | None = None) -> int:
    """Entry point of the ``nodeloom`` command; ``registry`` defaults to built-ins + plugins."""
    args = _parser().parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    handler: Handler = args.handler
    try:
        return handler(args, registry or installed_registry())
    except NodeloomError as exc:
        print(f"nodeloom: {exc.detail}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodeloom",
        description="Validate, run and rerun nodeloom workflows; serve the API.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    db_help = "database URL (default: $NODELOOM_DATABASE_URL, else SQLite in ./.nodeloom/)"

    validate = commands.add_parser("validate", help="check a workflow file and list every error")
    validate.add_argument("file", type=Path, metavar="FILE.json", help="a workflow document")
    validate.set_defaults(handler=cli_mcp.using_mcp_tools(_validate))

    run = commands.add_parser("run", help="run a workflow file, store the run, print its outputs")
    run.add_argument("file", type=Path, metavar="FILE.json", help="a workflow document")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help="an input value (repeatable); converted to the "
        "type the input's schema declares, JSON for objects and arrays",
    )
    _run_options(run, db_help)
    run.set_defaults(handler=cli_mcp.using_mcp_tools(_run))

    rerun = commands.add_parser(
        "rerun", help="a child run of RUN_ID with changes, reusing every result they do not affect"
    )
    rerun.add_argument("run_id", metavar="RUN_ID")
    rerun.add_argument(
        "--from",
        dest="from_node",
        metavar="NODE",
        help="execute this node and everything downstream of it again",
    )
    _change_options(rerun)
    _run_options(rerun, db_help)
    rerun.set_defaults(handler=cli_mcp.using_mcp_tools(cli_runs.rerun))

    replay = commands.add_parser(
        "replay",
        help="a child run of RUN_ID executing every node again, models and tools answered "
        "from RUN_ID's records (no model is called while their inputs are as recorded)",
    )
    replay.add_argument("run_id", metavar="RUN_ID")
    _change_options(replay)
    replay.add_argument(
        "--on-miss",
        choices=("fail", "call"),
        default="fail",
        help="a recorded node whose inputs changed: fail it (default), or call it again",
    )
    _run_options(replay, db_help)
    replay.set_defaults(handler=cli_mcp.using_mcp_tools(cli_runs.rerun))

    resume = commands.add_parser("resume", help="finish an interrupted run")
    resume.add_argument("run_id", metavar="RUN_ID")
    _run_options(resume, db_help)
    resume.set_defaults(handler=cli_mcp.using_mcp_tools(cli_runs.resume))

    runs = commands.add_parser("runs", help="recent runs, or one run tree")
    runs.add_argument("--tree", metavar="RUN_ID", help="draw the tree of runs RUN_ID belongs to")
    runs.add_argument("--status", help="only runs with this status")
    runs.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    runs.add_argument("--db", metavar="URL", help=db_help)
    runs.set_defaults(handler=cli_runs.runs)

    models = commands.add_parser(
        "models", help="the model registry (models/models.toml) with each model's availability"
    )
    models.add_argument("--json", action="store_true", help="print the models as JSON")
    models.set_defaults(handler=cli_models.models)
    cli_discover.add_command(models)

    cli_mcp.add_command(commands)
    cli_serve.add_commands(commands, db_help)
    cli_worker.add_command(commands, db_help)
    cli_test.add_command(commands, db_help)
    cli_eval.add_command(commands, db_help)
    cli_collections.add_command(commands, db_help)
    return parser


def _run_options(parser: argparse.ArgumentParser, db_help: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the whole run (status, outputs, every node) as JSON",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"nodes run at once at most (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--db", metavar="URL", help=db_help)


def _change_options(parser: argparse.ArgumentParser) -> None:
    """``--set NODE.PARAM=VALUE`` and ``-i NAME=VALUE``, of `rerun` and `replay`."""
    parser.add_argument(
        "--set",
        dest="params",
        action="append",
        default=[],
        type=_name_value,
        metavar="NODE.PARAM=VALUE",
        help="change a param (repeatable); VALUE is JSON when it parses, else text",
    )
    parser.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help="change an input value (repeatable)",
    )


def _name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number


# -- validate ---------------------------------------------------------------------------------


def _validate(args: argparse.Namespace, registry: NodeRegistry) -> int:
    workflow = load(args.file)
    if checked_plan(args.file, with_saved(workflow, registry), registry, out=sys.stdout) is None:
        return 1
    print(f"{args.file}: valid ({len(workflow.nodes)} nodes, {len(workflow.edges)} edges)")
    return 0


def _run(args: argparse.Namespace, registry: NodeRegistry) -> int:
    workflow = load(args.file)
    plan = checked_plan(args.file, with_saved(workflow, registry), registry, out=sys.stderr)
    if plan is None:
        return 1
    return cli_runs.run(args, registry, workflow, plan)


def with_saved(workflow: Workflow, registry: NodeRegistry) -> Workflow:
    """The document with the saved workflows it runs as bodies, from the database (which is
    opened only for a document that names one)."""
    if not names_saved(workflow, registry):
        return workflow

    async def resolve() -> Workflow:
        database = await Database.connect(read_settings().database_url)
        try:
            return await with_saved_bodies(workflow, Store(database), registry, owner_id=None)
        finally:
            await database.close()

    return cli_mcp.run(resolve())


def load(path: Path) -> Workflow:
    """Read and decode a workflow file; every problem is one `UsageError` line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a workflow file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise UsageError(f"{path}: the file is empty, not a workflow document")
    try:
        return decode_workflow(data)
    except WorkflowInvalid as exc:
        issue = exc.issues[0]
        if "JSON is malformed" in issue.message or "truncated" in issue.message:
            raise UsageError(f"{path}: not valid JSON: {issue.message}") from None
        at = f" (at {issue.path})" if issue.path else ""
        raise UsageError(f"{path}: not a workflow document: {issue.message}{at}") from None


def checked_plan(
    path: Path, workflow: Workflow, registry: NodeRegistry, out: TextIO
) -> Plan | None:
    """The executable plan, or None after printing every validation error to ``out``."""
    # Model names come from $NODELOOM_MODELS_DIR/models.toml: an unknown one is an error here.
    settings = read_settings()
    context = CheckContext(
        models=ModelRegistry.load(settings.models_dir).names, workspace=settings.workspace
    )
    plan, issues = analyse(workflow, registry, context)
    for issue in issues:
        print(issue.describe(), file=out)
    if plan is None:
        count = len(issues)
        print(f"{path}: invalid ({count} error{'' if count == 1 else 's'})", file=out)
    return plan


if __name__ == "__main__":
    sys.exit(main())
