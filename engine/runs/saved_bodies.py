"""Saved workflows as bodies (SPEC §12): a `subgraph`, `map` or `loop` node may run a saved
workflow (``workflow``, with an optional ``version``) instead of one of the document's own
bodies. Before a document is validated or run, each one it names is copied into its
`subgraphs` under `saved_body` (``<id>@<version>``), its own bodies with it, and the version
(the current one, when the node names none) is written on the node: the run's snapshot then
records exactly what ran, and a new version of the saved workflow changes the node's key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.documents.document import Workflow, from_builtins, to_builtins
from engine.documents.graph import MAX_DEPTH
from engine.documents.issues import Issue, pointer
from engine.errors import NotFound, WorkflowInvalid
from engine.nodes.body import BodyNode, saved_body
from engine.nodes.registry import NodeRegistry
from engine.records import WorkflowRecord

__all__ = ["SavedWorkflows", "names_saved", "with_saved_bodies"]


class SavedWorkflows(Protocol):
    async def get_workflow(
        self, workflow_id: str, version: int | None = None, *, owner_id: str | None = None
    ) -> WorkflowRecord: ...


async def with_saved_bodies(
    workflow: Workflow,
    saved: SavedWorkflows,
    registry: NodeRegistry,
    *,
    owner_id: str | None,
    workflow_id: str | None = None,
) -> Workflow:
    """``workflow`` with the saved workflows its body nodes name copied in (see above); the
    same object when it names none. A saved workflow that ``owner_id`` may not see is left
    out: validation then says `unknown_workflow`, and nothing of it is shown. A saved workflow
    that contains itself (``workflow_id``: the one ``workflow`` is a version of) raises
    `WorkflowInvalid` naming the chain."""
    if not names_saved(workflow, registry):
        return workflow
    document = to_builtins(workflow)
    copier = _Copier(saved, registry, owner_id, dict(document.get("subgraphs", {})))
    chain = (workflow_id,) if workflow_id else ()
    document["nodes"] = await copier.nodes(document["nodes"], chain, "/nodes")
    for name in list(document.get("subgraphs", {})):
        body = copier.subgraphs[name]
        path = pointer("subgraphs", name, "nodes")
        copier.subgraphs[name] = {**body, "nodes": await copier.nodes(body["nodes"], chain, path)}
    document["subgraphs"] = copier.subgraphs
    return from_builtins(document)


def names_saved(workflow: Workflow, registry: NodeRegistry) -> bool:
    """Whether a body node of the document runs a saved workflow."""
    bodies = workflow.subgraphs.values()
    nodes = [*workflow.nodes, *(node for body in bodies for node in body.nodes)]
    return any(_names_saved({"type": n.type, "params": n.params}, registry) for n in nodes)


def _names_saved(node: Mapping[str, Any], registry: NodeRegistry) -> bool:
    node_type = registry.get(node["type"])
    return (
        node_type is not None
        and issubclass(node_type, BodyNode)
        and isinstance(node.get("params", {}).get("workflow"), str)
    )


class _Copier:
    def __init__(
        self,
        saved: SavedWorkflows,
        registry: NodeRegistry,
        owner_id: str | None,
        subgraphs: dict[str, Any],
    ) -> None:
        self.saved = saved
        self.registry = registry
        self.owner_id = owner_id
        self.subgraphs = subgraphs

    async def nodes(
        self, nodes: list[dict[str, Any]], chain: tuple[str, ...], path: str | None
    ) -> list[dict[str, Any]]:
        """The nodes, each that names a saved workflow with its version, that workflow (and
        those it names in turn) copied into the subgraphs. ``path``: where the nodes are in
        the document (None: in a saved workflow, which the issues then name)."""
        done = []
        for index, node in enumerate(nodes):
            if not _names_saved(node, self.registry):
                done.append(node)
                continue
            params = node.get("params", {})
            wanted: str = params["workflow"]
            where = None if path is None else f"{path}/{index}/params/workflow"
            if wanted in chain:
                loop = " → ".join([*chain[chain.index(wanted) :], wanted])
                raise WorkflowInvalid(
                    [
                        Issue(
                            "recursive_workflow",
                            f"workflow {wanted} contains itself: {loop}",
                            node=node["id"],
                            path=where,
                        )
                    ]
                )
            if len(chain) >= MAX_DEPTH:
                raise WorkflowInvalid(
                    [
                        Issue(
                            "invalid_params",
                            f"bodies nest deeper than {MAX_DEPTH}: {' → '.join([*chain, wanted])}",
                            node=node["id"],
                            path=where,
                        )
                    ]
                )
            version = params.get("version")
            try:
                record = await self.saved.get_workflow(
                    wanted, version if isinstance(version, int) else None, owner_id=self.owner_id
                )
            except NotFound:
                done.append(node)  # validation says it is unknown
                continue
            await self._copy(record, (*chain, wanted))
            done.append({**node, "params": {**params, "version": record.version}})
        return done

    async def _copy(self, record: WorkflowRecord, chain: tuple[str, ...]) -> None:
        """A saved workflow's version as one of the subgraphs, its own bodies renamed beside
        it (``<name>__<id>_<version>``)."""
        name = saved_body(record.id, record.version)
        if name in self.subgraphs:
            return
        self.subgraphs[name] = {"nodes": []}  # taken, while it is being copied
        document = record.document
        own = document.get("subgraphs", {})
        renamed = {body: f"{body}__{record.id}_{record.version}" for body in own}
        for body, content in own.items():
            nodes = await self.nodes(_regraph(content["nodes"], renamed), chain, None)
            self.subgraphs[renamed[body]] = {**content, "nodes": nodes}
        self.subgraphs[name] = {
            "nodes": await self.nodes(_regraph(document["nodes"], renamed), chain, None),
            "edges": document.get("edges", []),
            "description": document.get("description", ""),
        }


def _regraph(nodes: list[dict[str, Any]], renamed: Mapping[str, str]) -> list[dict[str, Any]]:
    """Nodes whose ``graph`` names a body of their document, renamed as it was copied."""
    return [
        {**node, "params": {**node["params"], "graph": renamed[node["params"]["graph"]]}}
        if isinstance(node.get("params", {}).get("graph"), str)
        and node["params"]["graph"] in renamed
        else node
        for node in nodes
    ]
