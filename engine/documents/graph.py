"""From a workflow document to a validated, executable `Plan`: every issue collected, with its
place in the document (networkx for the graph work)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import networkx as nx

from engine.documents.digest import canonical, digest
from engine.documents.document import Workflow
from engine.documents.issues import Issue, pointer
from engine.documents.plan import Plan, PlanNode, collection_paused
from engine.errors import WorkflowInvalid
from engine.nodes.body import BodyNode
from engine.nodes.registry import ID_PATTERN, NodeRegistry, NodeSettings, split_params
from engine.nodes.types import CheckContext, Port, compatible

__all__ = [
    "MAX_DEPTH",
    "analyse",
    "body_document",
    "body_material",
    "body_node_ports",
    "compile_plan",
    "replan",
    "validate",
]


def _parse_ref(ref: str) -> tuple[str, str] | None:
    node, dot, port = ref.partition(".")
    if not dot or not ID_PATTERN.match(node) or not ID_PATTERN.match(port):
        return None
    return node, port


MAX_DEPTH = 8  # bodies within bodies


class _Builder:
    """Collects every issue while gathering what a `Plan` needs. A body's builder (``within``:
    the names of the bodies it is inside, outermost first) shares the document's bodies."""

    def __init__(
        self,
        workflow: Workflow,
        registry: NodeRegistry,
        context: CheckContext,
        *,
        within: tuple[str, ...] = (),
        bodies: dict[str, Plan | None] | None = None,
    ) -> None:
        self.workflow = workflow
        self.registry = registry
        self.context = context
        self.within = within
        # The plans of the document's bodies, by name, made once (None: invalid).
        self.bodies: dict[str, Plan | None] = {} if bodies is None else bodies
        self.issues: list[Issue] = []
        self.nodes: dict[str, PlanNode] = {}
        self.graph: nx.DiGraph = nx.DiGraph()
        self.edge_index: dict[tuple[str, str], int] = {}
        # Nodes whose params are invalid: their ports are uncertain, so edges to them and their
        # inputs are not checked (one error per mistake, not a cascade).
        self.broken: set[str] = set()

    def add(
        self,
        code: Any,
        message: str,
        *,
        node: str | None = None,
        port: str | None = None,
        path: str | None = None,
    ) -> None:
        self.issues.append(Issue(code, message, node=node, port=port, path=path))

    def build(self) -> Plan | None:
        known_ids: set[str] = set()
        for index, node in enumerate(self.workflow.nodes):
            self._node(index, node.id, node.type, node.params, known_ids)
        for index, edge in enumerate(self.workflow.edges):
            self._edge(index, edge.source, edge.target)
        self._missing_inputs()
        if not self.within:  # every body is checked, whether a node runs it or not
            for name in self.workflow.subgraphs:
                self._body(name, None)
        order = self._order()
        if self.issues or order is None:
            return None
        nodes = {node_id: self.nodes[node_id] for node_id in order}
        return Plan(self.workflow, nodes, self.graph)

    def _body(self, name: str, node_id: str | None) -> Plan | None:
        """The plan of the document's body ``name`` (its issues reported once, with their
        paths in the document), or None when it is invalid or contains itself."""
        if name in self.within:
            chain = " → ".join([*self.within[self.within.index(name) :], name])
            self.add(
                "recursive_workflow",
                f"subgraph {name!r} contains itself: {chain}",
                node=node_id,
                path=pointer("subgraphs", name),
            )
            return None
        if name in self.bodies:
            return self.bodies[name]
        if len(self.within) >= MAX_DEPTH:
            self.add(
                "invalid_params",
                f"bodies nest deeper than {MAX_DEPTH}: " + " → ".join([*self.within, name]),
                node=node_id,
                path=pointer("subgraphs", name),
            )
            return None
        self.bodies[name] = None  # while it is being built
        builder = _Builder(
            body_document(self.workflow, name),
            self.registry,
            self.context,
            within=(*self.within, name),
            bodies=self.bodies,
        )
        plan = builder.build()
        prefix = pointer("subgraphs", name)
        for issue in builder.issues:
            path = (
                issue.path
                if issue.path and issue.path.startswith("/subgraphs/")
                else (prefix + (issue.path or ""))
            )
            self.issues.append(msgspec.structs.replace(issue, path=path))
        self.bodies[name] = plan
        return plan

    def _body_ports(
        self, node_id: str, path: str, node_type: type[BodyNode], params: dict[str, Any]
    ) -> tuple[Plan, tuple[Port, ...], tuple[Port, ...]] | None:
        """A body node's body and ports; None (reported) when its body is unknown or invalid."""
        name = node_type.body_name(params)
        saved = params.get("workflow")
        if isinstance(saved, str) and (name is None or name not in self.workflow.subgraphs):
            version = params.get("version")
            which = f"version {version} of " if version is not None else ""
            self.add(
                "unknown_workflow",
                f"{which}workflow {saved!r} is not a saved workflow this document can use",
                node=node_id,
                path=path + "/params/workflow",
            )
            return None
        if name is None or name not in self.workflow.subgraphs:
            known = ", ".join(sorted(self.workflow.subgraphs)) or "none"
            self.add(
                "unknown_subgraph",
                f"graph {name!r} is not a subgraph of this document (its subgraphs: {known})",
                node=node_id,
                path=path + "/params/graph",
            )
            return None
        body = self._body(name, node_id)
        if body is None:
            return None
        ports = body.body_ports()
        found = list(node_type.check_body(params, ports))
        for issue in found:
            self.add(
                issue.code, issue.message, node=node_id, path=path + "/params" + (issue.path or "")
            )
        if found:
            return None
        inputs, outputs = node_type.body_ports(params, ports)
        return body, inputs, outputs

    def _node(
        self, index: int, node_id: str, type_name: str, params: dict[str, Any], known_ids: set[str]
    ) -> None:
        path = f"/nodes/{index}"
        if not ID_PATTERN.match(node_id):
            self.add(
                "invalid_id",
                f"node id {node_id!r} must match {ID_PATTERN.pattern}",
                node=node_id,
                path=path + "/id",
            )
        if node_id in known_ids:
            self.add(
                "duplicate_node_id",
                f"node id {node_id!r} is used more than once",
                node=node_id,
                path=path + "/id",
            )
            return
        known_ids.add(node_id)
        self.graph.add_node(node_id)
        node_type = self.registry.get(type_name)
        if node_type is None:
            self.add(
                "unknown_node_type",
                f"unknown node type {type_name!r}",
                node=node_id,
                path=path + "/type",
            )
            return
        errors = self.registry.params_errors(type_name, params)
        for error_path, message in errors:
            field_name = ".".join(map(str, error_path)) or "params"
            self.add(
                "invalid_params",
                f"{field_name}: {message}",
                node=node_id,
                path=pointer("nodes", index, "params", *error_path),
            )
        for issue in () if errors else node_type.check(params, self.context):
            self.issues.append(
                Issue(
                    issue.code,
                    issue.message,
                    node=node_id,
                    port=issue.port,
                    path=path + "/params" + (issue.path or ""),
                )
            )
        body: Plan | None = None
        own, settings = split_params(params)
        material: list[Any] = [type_name, node_type.version, own]
        try:
            inputs, outputs = node_type.input_ports(params), node_type.output_ports(params)
        except Exception:  # noqa: BLE001 - bad params (reported above) leave the ports unknown
            inputs, outputs = node_type.inputs, node_type.outputs
            self.broken.add(node_id)
        if errors:
            self.broken.add(node_id)
        elif issubclass(node_type, BodyNode):
            found = self._body_ports(node_id, path, node_type, own)
            if found is None:
                self.broken.add(node_id)
            else:
                body, inputs, outputs = found
                material.append(body_material(body))
        self.nodes[node_id] = PlanNode(
            id=node_id,
            index=index,
            node_type=node_type,
            params=own,
            settings=NodeSettings() if errors else settings,
            inputs={port.name: port for port in inputs},
            outputs={port.name: port for port in outputs},
            key_material=b"" if errors else canonical(material),
            body=body,
        )

    def _endpoint(self, index: int, ref: str, end: str) -> tuple[PlanNode, Port] | None:
        path = f"/edges/{index}/{end}"
        parsed = _parse_ref(ref)
        if parsed is None:
            self.add("invalid_id", f'edge `{end}` must be "node.port", got {ref!r}', path=path)
            return None
        node_id, port_name = parsed
        if not self.graph.has_node(node_id):
            self.add(
                "missing_node",
                f"edge `{end}` names node {node_id!r}, which does not exist",
                node=node_id,
                port=port_name,
                path=path,
            )
            return None
        node = self.nodes.get(node_id)
        if node is None or node_id in self.broken:  # its type or params are already reported
            return None
        ports = node.outputs if end == "from" else node.inputs
        if port_name not in ports:
            kind = "output" if end == "from" else "input"
            names = ", ".join(ports) or "none"
            self.add(
                "unknown_port",
                f"{node.node_type.type} node {node_id!r} has no {kind} port "
                f"{port_name!r} ({kind} ports: {names})",
                node=node_id,
                port=port_name,
                path=path,
            )
            return None
        return node, ports[port_name]

    def _edge(self, index: int, source_ref: str, target_ref: str) -> None:
        source = self._endpoint(index, source_ref, "from")
        target = self._endpoint(index, target_ref, "to")
        source_id, target_id = source_ref.partition(".")[0], target_ref.partition(".")[0]
        if self.graph.has_node(source_id) and self.graph.has_node(target_id):
            self.graph.add_edge(source_id, target_id)
            self.edge_index.setdefault((source_id, target_id), index)
        if source is None or target is None:
            if target is not None and source_id in self.broken:  # connected, type unknown
                target[0].sources.setdefault(target[1].name, []).append((source_id, ""))
            return
        (source_node, source_port), (target_node, target_port) = source, target
        path = f"/edges/{index}"
        if not compatible(source_port.type, target_port.type):
            self.add(
                "type_mismatch",
                f"{source_ref} gives {source_port.type}, {target_ref} takes {target_port.type}",
                node=target_node.id,
                port=target_port.name,
                path=path,
            )
            return
        sources = target_node.sources.setdefault(target_port.name, [])
        if sources and not target_port.many:
            self.add(
                "multiple_edges",
                f"input {target_ref} takes one edge and already has one "
                f"from {'.'.join(sources[0])}",
                node=target_node.id,
                port=target_port.name,
                path=path,
            )
            return
        sources.append((source_node.id, source_port.name))
        if target_node.id not in source_node.successors:
            source_node.successors.append(target_node.id)
            target_node.predecessors.append(source_node.id)

    def _missing_inputs(self) -> None:
        for node in self.nodes.values():
            if node.id in self.broken:
                continue
            for port in node.inputs.values():
                if (
                    port.required
                    and not port.has_default
                    and port.name not in node.sources
                    and not (port.alternative and port.alternative in node.sources)
                ):
                    self.add(
                        "missing_input",
                        f"input {node.id}.{port.name} needs an edge"
                        + (f" (or {node.id}.{port.alternative} one)" if port.alternative else ""),
                        node=node.id,
                        port=port.name,
                        path=pointer("nodes", node.index),
                    )

    def _order(self) -> list[str] | None:
        try:
            return list(nx.topological_sort(self.graph))
        except nx.NetworkXUnfeasible:
            pass
        for component in nx.strongly_connected_components(self.graph):
            if len(component) == 1:
                (only,) = component
                if not self.graph.has_edge(only, only):
                    continue
            cycle = nx.find_cycle(self.graph.subgraph(component))
            ids = [source for source, _ in cycle]
            closing = self.edge_index.get(cycle[-1][:2])
            self.add(
                "cycle",
                "cycle: " + " → ".join([*ids, ids[0]]),
                node=ids[0],
                path=pointer("edges", closing) if closing is not None else None,
            )
        return None


def body_document(workflow: Workflow, name: str) -> Workflow:
    """The subgraph ``name`` of ``workflow`` as a document of its own (the plan of a body is
    of it), with the subgraphs it may run in turn."""
    body = workflow.subgraphs[name]
    return Workflow(
        schema_version=1,
        name=name,
        nodes=body.nodes,
        edges=body.edges,
        description=body.description,
        subgraphs=workflow.subgraphs,
    )


def body_material(body: Plan) -> str:
    """What a body node's cache key takes from its body: a digest of its nodes' key material
    (theirs include their own bodies') and wiring."""
    return digest(
        [[node.id, node.key_material.decode(), node.sources] for node in body.nodes.values()]
    )


def body_node_ports(
    workflow: Workflow,
    node_type: type[BodyNode],
    params: dict[str, Any],
    registry: NodeRegistry,
    context: CheckContext | None = None,
) -> tuple[tuple[Port, ...], tuple[Port, ...]] | None:
    """A body node's ports with these params in ``workflow`` (whose `subgraphs` it may run);
    None when its body is unknown or invalid (for editors: validation says why)."""
    builder = _Builder(workflow, registry, context or CheckContext())
    with collection_paused():
        found = builder._body_ports("", "", node_type, split_params(params)[0])
    return None if found is None else found[1:]


def analyse(
    workflow: Workflow, registry: NodeRegistry, context: CheckContext | None = None
) -> tuple[Plan | None, list[Issue]]:
    """Validate a workflow; the plan is returned only when there is no issue."""
    builder = _Builder(workflow, registry, context or CheckContext())
    with collection_paused():
        plan = builder.build()
    return plan, builder.issues


def validate(
    workflow: Workflow, registry: NodeRegistry, context: CheckContext | None = None
) -> list[Issue]:
    return analyse(workflow, registry, context)[1]


def replan(
    base: Plan,
    workflow: Workflow,
    changed: Iterable[str],
    registry: NodeRegistry,
    context: CheckContext | None = None,
) -> Plan | None:
    """The plan of ``workflow``, a copy of ``base``'s document but for the params of the
    ``changed`` nodes (or of nodes inside their bodies: paths), made by analysing those nodes
    alone (a rerun with new params).

    Raises `WorkflowInvalid` for bad params; returns None when a changed node's ports differ
    from before (the edges must then be checked again: compile the whole document)."""
    builder = _Builder(workflow, registry, context or CheckContext())
    nodes = dict(base.nodes)
    changed = {node_id.partition("/")[0] for node_id in changed}  # a path: its body node
    for node_id in changed:
        index = base.nodes[node_id].index  # the same in both documents
        document_node = workflow.nodes[index]
        builder._node(index, node_id, document_node.type, document_node.params, set())
        before, after = base.nodes[node_id], builder.nodes.get(node_id)
        if after is None or after.inputs != before.inputs or after.outputs != before.outputs:
            return None
        nodes[node_id] = msgspec.structs.replace(
            before,
            params=after.params,
            settings=after.settings,
            key_material=after.key_material,
            body=after.body,
        )
    if builder.issues:
        raise WorkflowInvalid(builder.issues)
    plan = Plan(workflow, nodes, base._graph)
    # What the plan keeps of its nodes, from base's: the same order, the same types.
    plan._position = base._positions()
    plan._roles = {role: [nodes[n.id] for n in found] for role, found in base._roles.items()}
    never, outside = base.special()
    changed_never = {n for n in changed if nodes[n].settings.cache != "auto"}
    plan._special = ((never - changed) | changed_never, outside)
    return plan


def compile_plan(
    workflow: Workflow, registry: NodeRegistry, context: CheckContext | None = None
) -> Plan:
    """The executable plan, or `WorkflowInvalid` with every issue."""
    plan, issues = analyse(workflow, registry, context)
    if plan is None:
        raise WorkflowInvalid(issues)
    return plan
