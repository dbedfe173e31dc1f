"""What a tool is: a name, an args JSON Schema and an async `call`; `ToolError` for failures."""

from __future__ import annotations

from typing import Any, ClassVar

from engine.errors import NodeloomError


class ToolError(NodeloomError):
    """A tool could not do its work; ``retryable`` says whether trying again may help."""

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.retryable = retryable


class Tool:
    """Base class of tools. Subclasses set the class attributes and implement `call`.

    ``args`` are already valid against ``args_schema`` when `call` runs. ``idempotency_key``
    (``run:node:attempt``) is what side-effecting tools pass on so a retry is not done twice.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    args_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        raise NotImplementedError

    async def call_for(
        self, args: dict[str, Any], *, idempotency_key: str, owner_id: str | None
    ) -> Any:
        """`call` on behalf of the run's owner (None without accounts): tools that show stored
        objects (a user's collections) override this to see only the owner's."""
        return await self.call(args, idempotency_key=idempotency_key)
