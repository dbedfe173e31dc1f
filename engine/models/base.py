"""What every model provider offers: a request in, streamed text and a `Completion` out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec

from engine.models.conversation import Message

__all__ = ["Completion", "FinishReason", "GenerationRequest", "LoadedModel", "OnText"]

FinishReason = Literal["stop", "length", "cancelled"]
OnText = Callable[[str], None]


class GenerationRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One generation. ``response_schema`` (a JSON Schema) constrains the text to matching JSON.
    ``messages``, when given, are the conversation the model answers, instead of ``system`` and
    ``prompt``."""

    prompt: str
    messages: tuple[Message, ...] = ()
    system: str | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    response_schema: dict[str, Any] | None = None


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    # Seconds from the request to the first streamed text, and for the whole generation.
    first_token_s: float | None = None
    duration_s: float = 0.0

    @property
    def usage(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


class LoadedModel(Protocol):
    """A model ready to generate, as the pool holds it."""

    name: str
    # Bytes it was estimated to occupy (0 for a model served elsewhere).
    memory: int

    async def generate(self, request: GenerationRequest, on_text: OnText) -> Completion:
        """Generate, calling ``on_text`` with each piece of text as it is produced. Cancelling
        the awaiting task stops the generation."""
        ...

    def close(self) -> None:
        """Free what the model holds. Called once, when no generation is running."""
        ...
