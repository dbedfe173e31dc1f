"""`KnowledgeSlot`: where the `retrieve` node and the `knowledge_search` tool find this
process's collections. Node types are made before any database is open, so the slot is made
with them (`nodes.builtin_node_types`) and filled once the process has opened its database
(the server, `nodeloom run`, a worker): as the MCP servers' tools are registered late."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import NodeFailure

if TYPE_CHECKING:
    from engine.knowledge.service import Knowledge

__all__ = ["KnowledgeSlot"]


class KnowledgeSlot:
    def __init__(self) -> None:
        self._knowledge: Knowledge | None = None

    def attach(self, knowledge: Knowledge | None) -> None:
        self._knowledge = knowledge

    @property
    def attached(self) -> Knowledge | None:
        return self._knowledge

    def get(self) -> Knowledge:
        if self._knowledge is None:
            raise NodeFailure(
                "collections are not available in this process (it has no database open)",
                retryable=False,
            )
        return self._knowledge
