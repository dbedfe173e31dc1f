"""What a rerun changes: the parent's document with overrides, its plan, what it must execute,
and why each node will run."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import msgspec

from engine.documents.document import Workflow, from_builtins, to_builtins, with_params
from engine.documents.graph import replan
from engine.documents.issues import Issue, pointer
from engine.documents.plan import Plan
from engine.errors import WorkflowInvalid
from engine.execution.reasons import Reason
from engine.nodes.body import BodyNode
from engine.nodes.registry import COMMON_PARAMS, NodeRegistry
from engine.nodes.types import CheckContext

__all__ = ["Rerun", "changed_params", "override", "plan_rerun", "reasons"]


class Rerun(NamedTuple):
    """A child run as planned from its parent."""

    plan: Plan  # of the parent's document with the overrides applied
    # The param overrides of the child's document against the stored document it shares with
    # its parent: the parent's, with the child's own on top.
    overrides: dict[str, dict[str, Any]]
    changes: dict[str, Any]  # the child's own overrides, as its row records them
    forced: set[str]  # ``from_node`` and what lies downstream of it
    reasons: dict[str, Reason]  # why nodes will execute, as far as the documents tell
    # The nodes whose type, params or edges may differ from the parent's (None: any node, when
    # the parent's plan is not at hand); the others are taken over on their keys alone when
    # all they depend on is.
    changed: set[str] | None


def plan_rerun(
    parent_id: str,
    base: Workflow,
    parent_plan: Plan | None,
    *,
    overridden: Mapping[str, Mapping[str, Any]],
    from_node: str | None,
    params: Mapping[str, Mapping[str, Any]],
    inputs: Mapping[str, Any],
    registry: NodeRegistry,
    context: CheckContext,
    compile_plan: Callable[[Workflow], Plan],
    document: Workflow | None = None,
) -> Rerun:
    """The rerun of the run ``parent_id``, whose document is ``base`` (its stored document with
    the param overrides ``overridden``). ``document``, when given, is the child's document
    already made (``base`` with ``params``, and the saved workflows they name copied in).
    With the parent's plan (of ``base``), only the nodes
    with new params are analysed again; bad overrides raise `WorkflowInvalid` naming each."""
    workflow = document or override(base, parent_id, from_node, params, registry, plan=parent_plan)
    # The top-level nodes given new params: those named, and the body nodes of those inside.
    top_level = {path.partition("/")[0] for path in params}
    plan = replan(parent_plan, workflow, top_level, registry, context) if parent_plan else None
    changed = top_level if plan is not None else None
    if plan is None:
        plan = compile_plan(workflow)
    forced = {from_node, *plan.downstream(from_node)} if from_node else set()
    changes = {
        key: value for key, value in (("params", dict(params)), ("inputs", dict(inputs))) if value
    }
    return Rerun(
        plan=plan,
        overrides={
            node_id: {**overridden.get(node_id, {}), **params.get(node_id, {})}
            for node_id in {*overridden, *params}
        },
        changes=changes,
        forced=forced,
        reasons=reasons(base, workflow, from_node, forced, params),
        changed=changed,
    )


def override(
    base: Workflow,
    run_id: str,
    from_node: str | None,
    params: Mapping[str, Mapping[str, Any]],
    registry: NodeRegistry,
    *,
    plan: Plan | None = None,
) -> Workflow:
    """The parent's document with param overrides applied; every unknown name is an issue.
    Nodes without overrides are shared with ``base``, not copied. ``plan``, base's plan when at
    hand, tells where each node is in the document."""
    position: Mapping[str, int] = (
        _Positions(plan) if plan else {node.id: index for index, node in enumerate(base.nodes)}
    )
    nodes = list(base.nodes)
    issues = []
    if from_node is not None and from_node not in position:
        issues.append(
            Issue(
                "missing_node",
                f"from_node {from_node!r} is not a node of run {run_id}",
                node=from_node,
                path="/from_node",
            )
        )
    inside = {path: changes for path, changes in params.items() if "/" in path}
    for path, changes in inside.items():
        issues += _inner_issues(base, run_id, path, changes, registry=registry, position=position)
    for node_id, changes in params.items():
        if node_id in inside:
            continue
        if node_id not in position:
            issues.append(
                Issue(
                    "missing_node",
                    f"node {node_id!r} is not in run {run_id}",
                    node=node_id,
                    path=pointer("params", node_id),
                )
            )
            continue
        node = nodes[position[node_id]]
        known = registry.params_schema(node.type)["properties"] if node.type in registry else {}
        for name in changes:
            if name not in known:
                names = ", ".join(sorted(known))
                issues.append(
                    Issue(
                        "invalid_params",
                        f"{node.type} node {node_id!r} has no param {name!r} (its params: {names})",
                        node=node_id,
                        path=pointer("params", node_id, name),
                    )
                )
        nodes[position[node_id]] = msgspec.structs.replace(node, params={**node.params, **changes})
    if issues:
        raise WorkflowInvalid(issues)
    workflow = msgspec.structs.replace(base, nodes=nodes)
    if inside:  # their bodies are copied as their body nodes' own (see `with_params`)
        workflow = from_builtins(with_params(to_builtins(workflow), inside))
    return workflow


def _inner_issues(
    base: Workflow,
    run_id: str,
    path: str,
    changes: Mapping[str, Any],
    *,
    registry: NodeRegistry,
    position: Mapping[str, int],
) -> list[Issue]:
    """What is wrong with overrides of the node at ``path`` inside bodies (``m/s/llm``)."""
    first, *inner = path.split("/")
    where = pointer("params", path)
    if first not in position:
        return [
            Issue("missing_node", f"node {first!r} is not in run {run_id}", node=first, path=where)
        ]
    node = base.nodes[position[first]]
    walked = [first]
    for step in inner:
        node_type = registry.get(node.type)
        graph = (
            node_type.body_name(node.params)
            if node_type is not None and issubclass(node_type, BodyNode)
            else None
        )
        if graph is None or graph not in base.subgraphs:
            return [
                Issue(
                    "missing_node",
                    f"node {'/'.join(walked)!r} runs no body, so {path!r} names no node",
                    node=first,
                    path=where,
                )
            ]
        found = [candidate for candidate in base.subgraphs[graph].nodes if candidate.id == step]
        if not found:
            return [
                Issue(
                    "missing_node",
                    f"the body of {'/'.join(walked)!r} ({graph!r}) has no node {step!r}",
                    node=first,
                    path=where,
                )
            ]
        node = found[0]
        walked.append(step)
    known = registry.params_schema(node.type)["properties"] if node.type in registry else {}
    names = ", ".join(sorted(known))
    return [
        Issue(
            "invalid_params",
            f"{node.type} node {path!r} has no param {name!r} (its params: {names})",
            node=first,
            path=pointer("params", path, name),
        )
        for name in changes
        if name not in known
    ]


class _Positions(Mapping[str, int]):
    """Where each node of a plan is in its document."""

    def __init__(self, plan: Plan) -> None:
        self._nodes = plan.nodes

    def __getitem__(self, node_id: str) -> int:
        return self._nodes[node_id].index

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)


def changed_params(old_params: Mapping[str, Any], new_params: Mapping[str, Any]) -> list[str]:
    """The names of the params that differ between two versions of a node's params."""
    missing = object()
    return sorted(
        key
        for key in {*old_params, *new_params}
        if old_params.get(key, missing) != new_params.get(key, missing)
    )


def reasons(
    old: Workflow,
    new: Workflow,
    from_node: str | None,
    forced: set[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Reason]:
    """Why each node of a rerun would execute, as far as the documents tell. ``new`` is ``old``
    as `override` made it with ``params``: the same nodes in the same order, those with new
    params replaced. A node inside a body has its reason under its path without numbers
    (``m/llm``), and its body node says which of them changed."""
    reasons: dict[str, Reason] = {}
    inside = sorted(path for path in params or {} if "/" in path)
    for path in inside:
        names = tuple(sorted(name for name in (params or {})[path] if name not in COMMON_PARAMS))
        if names:
            reasons[path] = Reason("params_changed", names)
    bodies: dict[str, list[str]] = {path.partition("/")[0]: [] for path in inside}
    for path in inside:
        bodies[path.partition("/")[0]].append(path.partition("/")[2])
    for previous, node in zip(old.nodes, new.nodes, strict=True):
        if previous is node and node.id not in forced:
            continue  # shared with the parent's document: unchanged
        changed = [
            key for key in changed_params(previous.params, node.params) if key not in COMMON_PARAMS
        ]
        if node.id in bodies and set(changed) <= {"graph"}:  # its body was copied as its own
            reasons[node.id] = Reason("body_changed", tuple(bodies[node.id]))
        elif changed:
            reasons[node.id] = Reason("params_changed", tuple(changed))
        elif node.id == from_node:
            reasons[node.id] = Reason("forced", ("from_node",))
        elif node.id in forced and from_node is not None:
            reasons[node.id] = Reason("forced_downstream", (from_node,))
    return reasons
