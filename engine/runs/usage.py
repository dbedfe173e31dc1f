"""What a run's model calls took: tokens and cost, summed over its nodes (SPEC §13)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["node_tokens", "total_usage"]


def node_tokens(usage: Mapping[str, Any] | None) -> int:
    """Prompt and completion tokens of one node's usage."""
    if not usage:
        return 0
    return int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))


def total_usage(usages: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """``prompt_tokens``, ``completion_tokens``, ``total_tokens`` and ``cost`` (0 where the
    registry sets no prices) summed, and ``model``: the last model that answered (None when no
    model was called)."""
    prompt = completion = 0
    cost = 0.0
    model = None
    for usage in usages:
        if not usage:
            continue
        prompt += int(usage.get("prompt_tokens", 0))
        completion += int(usage.get("completion_tokens", 0))
        cost += float(usage.get("cost", 0.0))
        model = usage.get("model", model)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "model": model,
        "cost": cost,
    }
