"""Prompts and schemas the model tests share: completion-style, for a small base model."""

from __future__ import annotations

from typing import Any

FEW_SHOT = (
    "Q: What is the capital of France?\nA: Paris\n"
    "Q: How many legs does a spider have?\nA: Eight\n"
    "Q: What is the capital of Italy?\nA:"
)
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
