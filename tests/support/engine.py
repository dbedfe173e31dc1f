"""Executions (`new_execution`) and registries of the built-in node types, made the short
way: a plan, its inputs and the run's options by keyword."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.documents.plan import Plan
from engine.execution.events import Listener
from engine.execution.executor import DEFAULT_CONCURRENCY, Execution
from engine.execution.results import ResultStore
from engine.execution.start import RunStart
from engine.models import ModelService
from engine.nodes.registry import NodeRegistry
from nodes import builtin_node_types


def builtin_registry() -> NodeRegistry:
    """A registry of the node types that ship with nodeloom (the built-in tools)."""
    return NodeRegistry(builtin_node_types())


def new_execution(
    plan: Plan,
    inputs: Mapping[str, Any],
    *,
    run_id: str,
    listeners: Iterable[Listener] = (),
    store: ResultStore | None = None,
    workspace: Path | None = None,
    models: ModelService | None = None,
    max_concurrency: int = DEFAULT_CONCURRENCY,
    force: Iterable[str] = (),
    **start: Any,
) -> Execution:
    """An `Execution` of ``plan``; the other options are the `RunStart`'s (None: its
    default)."""
    given = {name: value for name, value in start.items() if value is not None}
    return Execution(
        RunStart(id=run_id, plan=plan, inputs=inputs, force=frozenset(force), **given),
        listeners=listeners,
        store=store,
        workspace=workspace,
        models=models,
        max_concurrency=max_concurrency,
    )
