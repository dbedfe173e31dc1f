"""`knowledge_search`: the agent's way into a collection (SPEC §14): the best chunks of the
run's owner's collection for a query, each with its source."""

from __future__ import annotations

from typing import Any, ClassVar

from engine.errors import InputsInvalid, NotFound
from engine.knowledge.slot import KnowledgeSlot
from nodes.tools.base import Tool, ToolError

__all__ = ["KnowledgeSearch"]

MAX_K = 20


class KnowledgeSearch(Tool):
    name = "knowledge_search"
    description = "Searches a collection of documents; answers the best passages with sources."
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "collection": {"type": "string", "minLength": 1},
            "query": {"type": "string", "minLength": 1},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 3},
        },
        "required": ["collection", "query"],
        "additionalProperties": False,
    }

    def __init__(self, slot: KnowledgeSlot) -> None:
        self.slot = slot

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        return await self.call_for(args, idempotency_key=idempotency_key, owner_id=None)

    async def call_for(
        self, args: dict[str, Any], *, idempotency_key: str, owner_id: str | None
    ) -> Any:
        knowledge = self.slot.attached
        if knowledge is None:
            raise ToolError("collections are not available in this process")
        try:
            hits = await knowledge.search(
                args["collection"], args["query"], owner_id=owner_id, k=args.get("k", 3)
            )
        except (NotFound, InputsInvalid) as exc:
            raise ToolError(exc.detail) from None
        return [{"text": hit.text, "source": hit.source, "chunk": hit.chunk} for hit in hits]
