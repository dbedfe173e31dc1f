"""Validation that needs the database: every `retrieve` node names a collection its run's
owner has (`unknown_collection`, at the node's `collection` param), checked before a run starts
as the rest of validation is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.documents.document import Node, Workflow
from engine.documents.issues import Issue, pointer
from engine.errors import NotFound

if TYPE_CHECKING:
    from engine.knowledge.service import Knowledge

__all__ = ["collection_issues"]


async def collection_issues(
    workflow: Workflow, knowledge: Knowledge, owner_id: str | None
) -> list[Issue]:
    issues: list[Issue] = []
    bodies: list[tuple[tuple[str, ...], list[Node]]] = [((), workflow.nodes)]
    bodies += [(("subgraphs", name), body.nodes) for name, body in workflow.subgraphs.items()]
    for prefix, nodes in bodies:
        for index, node in enumerate(nodes):
            name = node.params.get("collection") if node.type == "retrieve" else None
            if not isinstance(name, str):
                continue
            try:
                await knowledge.get(name, owner_id=owner_id)
            except NotFound:
                issues.append(
                    Issue(
                        "unknown_collection",
                        f"unknown collection {name!r}",
                        node=node.id,
                        path=pointer(*prefix, "nodes", index, "params", "collection"),
                    )
                )
    return issues
