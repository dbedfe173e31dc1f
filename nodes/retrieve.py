"""`retrieve`: the chunks of a collection that best answer `query` (SPEC §14), and the same as
one numbered `context` text for a prompt. The collection's `version` is part of the node's
cache key (`fingerprint`): a rerun retrieves again only when the collection changed.

Like `tool`, the node type is bound at construction to where this process's collections are
(`retrieve_node_type(slot)`), filled once its database is open."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from engine.errors import InputsInvalid, NodeFailure, NotFound
from engine.knowledge.search import MODES
from engine.knowledge.slot import KnowledgeSlot
from engine.nodes.types import NodeContext, NodeType, Port
from engine.storage.knowledge import Collection, Hit

__all__ = ["RetrieveNode", "numbered_context", "retrieve_node_type"]

MAX_TOP_K = 100


class RetrieveNode(NodeType):
    type = "retrieve"
    title = "Retrieve"
    category = "knowledge"
    description = (
        "Searches a collection for `query`: `chunks` are the best `top_k` pieces of its "
        "documents (text, source, chunk, score), `context` the same numbered with their sources, "
        "ready for a prompt. `mode`: keyword, vector or hybrid (default: hybrid when the "
        "collection has an embedding model, else keyword); `sources` keeps to files matching "
        "a glob."
    )
    reads_outside_world = True  # the collection's version is part of the cache key
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "collection": {
                "type": "string",
                "minLength": 1,
                "description": "The collection's name or id.",
            },
            "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 5},
            "mode": {"enum": list(MODES)},
            "sources": {
                "type": "string",
                "minLength": 1,
                "description": "Only chunks of documents whose path matches this glob.",
            },
        },
        "required": ["collection"],
        "additionalProperties": False,
    }
    inputs = (Port("query", "string"),)
    outputs = (Port("chunks", "array"), Port("context", "string"))
    slot: ClassVar[KnowledgeSlot]  # set by `retrieve_node_type`

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._collection: Collection | None = None  # what `fingerprint` found, for `run`

    async def _find(self, context: NodeContext) -> Collection:
        knowledge = self.slot.get()
        try:
            return await knowledge.get(self.params["collection"], owner_id=context.owner_id)
        except NotFound as exc:
            raise NodeFailure(exc.detail, retryable=False) from None

    async def fingerprint(self, inputs: Mapping[str, Any], context: NodeContext) -> str | None:
        try:
            self._collection = await self._find(context)
        except NodeFailure:
            return None  # `run` fails with the reason
        return f"{self._collection.id}@{self._collection.version}"

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        collection = self._collection or await self._find(context)
        try:
            hits = await self.slot.get().searcher.search(
                collection,
                inputs["query"],
                k=self.params.get("top_k", 5),
                mode=self.params.get("mode"),
                sources=self.params.get("sources"),
            )
        except InputsInvalid as exc:
            raise NodeFailure(exc.detail, retryable=False) from None
        chunks = [hit_value(hit) for hit in hits]
        return {"chunks": chunks, "context": numbered_context(chunks)}


def hit_value(hit: Hit) -> dict[str, Any]:
    return {"text": hit.text, "source": hit.source, "chunk": hit.chunk, "score": hit.score}


def numbered_context(chunks: list[dict[str, Any]]) -> str:
    """``[1] (docs/a.md, chunk 0)`` then the chunk's text, for each chunk, a blank line between."""
    return "\n\n".join(
        f"[{number}] ({chunk['source']}, chunk {chunk['chunk']})\n{chunk['text']}"
        for number, chunk in enumerate(chunks, start=1)
    )


def retrieve_node_type(slot: KnowledgeSlot) -> type[RetrieveNode]:
    """The `retrieve` node type searching the collections ``slot`` is filled with."""
    return type("RetrieveNode", (RetrieveNode,), {"__module__": __name__, "slot": slot})
