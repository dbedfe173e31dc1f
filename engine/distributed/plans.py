"""What a worker knows about a run: its plan, compiled once from the stored snapshot, and what a
rerun may take over. Node types the worker lacks get a stand-in that fails with a clear error."""

from __future__ import annotations

import asyncio
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import select

from engine.distributed.tables import DispatchedRunRow
from engine.document import Workflow, from_builtins
from engine.errors import NodeFailure
from engine.graph import Plan, compile_plan
from engine.results import NodeState
from engine.storage.repository import Store
from nodes.base import CheckContext, NodeContext, NodeType, Port
from nodes.registry import NodeRegistry

CACHED_RUNS = 64


@dataclass(eq=False, slots=True)
class RunSpec:
    run_id: str
    workflow_id: str | None
    plan: Plan
    inputs: dict[str, Any]
    reuse: dict[str, NodeState]  # a rerun: results of the parent it may take over
    force: frozenset[str]
    reasons: dict[str, str]


class MissingNodeType(NodeType):
    """Stands in for a node type this worker does not have; executing it fails the node."""

    title = "Missing node type"
    params_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        raise NodeFailure(
            f"node type {self.type!r} is not installed on worker {socket.gethostname()}: "
            "install the package that provides it (a `nodeloom.nodes` entry point) there",
            retryable=False,
        )


def tolerant_registry(registry: NodeRegistry, workflow: Workflow) -> NodeRegistry:
    """``registry``, plus a `MissingNodeType` for each type the workflow names that it lacks,
    with the ports the workflow's edges use (the server validated the document already)."""
    unknown = {node.type: node.id for node in workflow.nodes if node.type not in registry}
    if not unknown:
        return registry
    by_node = {node.id: node.type for node in workflow.nodes}
    ports: dict[str, tuple[set[str], set[str]]] = {name: (set(), set()) for name in unknown}
    for edge in workflow.edges:
        source, _, out_port = edge.source.partition(".")
        target, _, in_port = edge.target.partition(".")
        if by_node.get(source) in unknown:
            ports[by_node[source]][1].add(out_port)
        if by_node.get(target) in unknown:
            ports[by_node[target]][0].add(in_port)
    stand_ins = [
        type(
            f"Missing_{name}",
            (MissingNodeType,),
            {
                "type": name,
                "inputs": tuple(Port(p, many=True, required=False) for p in sorted(ins)),
                "outputs": tuple(Port(p) for p in sorted(outs)),
            },
        )
        for name, (ins, outs) in ports.items()
    ]
    return NodeRegistry([*registry, *stand_ins])


class RunSpecs:
    """The specs of recent runs, each loaded once even when many of its nodes arrive at once."""

    def __init__(self, store: Store, registry: NodeRegistry) -> None:
        self.store = store
        self.registry = registry
        self._specs: OrderedDict[str, asyncio.Future[RunSpec]] = OrderedDict()

    async def get(self, run_id: str) -> RunSpec:
        future = self._specs.get(run_id)
        if future is None or (future.done() and future.exception() is not None):
            future = self._specs[run_id] = asyncio.ensure_future(self._load(run_id))
            while len(self._specs) > CACHED_RUNS:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(run_id)
        return await asyncio.shield(future)

    async def _load(self, run_id: str) -> RunSpec:
        row = await self.store.run_row(run_id)
        async with self.store.sessions() as session:
            control = (
                await session.execute(
                    select(
                        DispatchedRunRow.reuse_from,
                        DispatchedRunRow.force,
                        DispatchedRunRow.reasons,
                    ).where(DispatchedRunRow.run_id == run_id)
                )
            ).first()
        workflow = from_builtins(await self.store.snapshot(row))
        # Validated against the server's models and workspace when the run was started.
        plan = compile_plan(workflow, tolerant_registry(self.registry, workflow), CheckContext())
        reuse_from, force, reasons = control if control is not None else (None, [], {})
        reuse = {}
        if reuse_from:
            priors = await self.store.prior_results(reuse_from)
            reuse = {node_id: prior for node_id, prior in priors.items() if node_id in plan.nodes}
        return RunSpec(
            run_id=run_id,
            workflow_id=row.workflow_id,
            plan=plan,
            inputs=row.inputs,
            reuse=reuse,
            force=frozenset(force),
            reasons=dict(reasons),
        )
