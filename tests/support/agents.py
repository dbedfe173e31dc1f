"""A scripted model standing in for one in the agent tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.models import Completion, GenerationRequest

MODEL = "gemma-3-270m"


class ScriptedModels:
    """Answers each generation with the next text of a script; records the requests."""

    names = frozenset({MODEL})

    def __init__(self, script: list[str]) -> None:
        self.script: Iterator[str] = iter(script)
        self.requests: list[GenerationRequest] = []

    async def generate(self, model: str, request: GenerationRequest, on_text: Any) -> Completion:
        self.requests.append(request)
        text = next(self.script)
        on_text(text)
        return Completion(text=text, prompt_tokens=10, completion_tokens=5, finish_reason="stop")

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        return None

    async def fit(self, model: str, messages: Any, reserve: int) -> Any:
        return messages
