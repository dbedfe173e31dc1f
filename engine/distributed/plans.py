"""What a worker knows about a run: its plan, compiled once from the stored snapshot, and what a
rerun may take over. Node types the worker lacks get a stand-in that fails with a clear error."""

from __future__ import annotations

import asyncio
import socket
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from sqlalchemy import select

from engine.distributed.tables import DispatchedRunRow
from engine.documents.document import Workflow, from_builtins
from engine.documents.graph import compile_plan
from engine.documents.plan import Plan
from engine.errors import NodeFailure
from engine.execution.bodies import BodyPaths, enclosing, instance_prefix
from engine.execution.lifecycle import RunScope
from engine.execution.reasons import Reason
from engine.nodes.body import body_of
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from engine.settings import owner_workspace
from engine.storage.repository import Store

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = [
    "CACHED_RUNS",
    "MissingNodeType",
    "RunSpec",
    "RunSpecs",
    "decode_reasons",
    "tolerant_registry",
]

CACHED_RUNS = 64


@dataclass(eq=False, slots=True)
class RunSpec:
    """A run as its nodes execute on a worker: its plan, and what all of them share (for a
    rerun, the parent's results it may take over and what it must execute)."""

    run_id: str
    workflow_id: str | None
    plan: Plan
    scope: RunScope
    nodes: BodyPaths  # the plan's nodes by path, those inside bodies too

    def scope_at(self, path: str, inputs: Mapping[str, Any] | None) -> RunScope:
        """The scope of the nodes of an instance (``path``: its prefix, or one of its nodes):
        the run's, with the instance's inputs (None: not needed, the node is no `input`), its
        nodes forced when a body node it is inside is."""
        force = self.scope.force
        prefix = instance_prefix(path)
        if any(body_node in force for body_node in enclosing(prefix)):
            force = force | set(self.nodes.instance(prefix))
        if inputs is None and force is self.scope.force:
            return self.scope
        given = self.scope.inputs if inputs is None else inputs
        return replace(self.scope, inputs=given, force=force)


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
    """``registry``, plus a `MissingNodeType` for each type the workflow names (in its bodies
    too) that it lacks, with the ports the workflow's edges use (the server validated the
    document already)."""
    graphs = [(workflow.nodes, workflow.edges)]
    graphs += [(body.nodes, body.edges) for body in workflow.subgraphs.values()]
    unknown = {node.type for nodes, _ in graphs for node in nodes if node.type not in registry}
    if not unknown:
        return registry
    ports: dict[str, tuple[set[str], set[str]]] = {name: (set(), set()) for name in unknown}
    for nodes, edges in graphs:
        by_node = {node.id: node.type for node in nodes}
        for edge in edges:
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

    def __init__(
        self,
        store: Store,
        registry: NodeRegistry,
        *,
        workspace: Path,
        models: ModelService | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.workspace = workspace
        self.models = models
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
        registry = tolerant_registry(self.registry, workflow)
        plan = compile_plan(workflow, registry, CheckContext(tools_checked=False))
        reuse_from, force, reasons = control if control is not None else (None, [], {})
        reuse = {}
        if reuse_from:
            priors = await self.store.prior_results(reuse_from)
            # Those inside bodies too: an instance's nodes may be taken over.
            reuse = {
                node_id: prior
                for node_id, prior in priors.items()
                if body_of(node_id) in plan.nodes
            }
        scope = RunScope(
            run_id=run_id,
            inputs=row.inputs,
            workspace=owner_workspace(self.workspace, row.owner_id),
            models=self.models,
            reuse=reuse,
            force=frozenset(force),
            reasons=decode_reasons(reasons),
            replay=await self.store.replay(row),
            owner_id=row.owner_id,
        )
        return RunSpec(
            run_id=run_id,
            workflow_id=row.workflow_id,
            plan=plan,
            scope=scope,
            nodes=BodyPaths(plan),
        )


def decode_reasons(stored: Any) -> dict[str, Reason]:
    """The reasons a queued run stored (`Scheduler.queue_run`); those of a run queued by an
    older server, in words only, are left for the lifecycle to find again."""
    try:
        return msgspec.convert(stored, dict[str, Reason])
    except msgspec.ValidationError:
        return {}
