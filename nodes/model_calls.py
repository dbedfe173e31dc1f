"""What the nodes that call models (`llm`, `agent`, `aggregate` in `synthesis` mode) share: the
`unknown_model` check and one generation with its failure turned into a node failure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.models import DEFAULT_MODEL, Completion, GenerationRequest, ModelError
from engine.nodes.types import CheckContext, NodeContext


def model_issue(params: Mapping[str, Any], context: CheckContext) -> Issue | None:
    """`unknown_model` when the `model` param names no registered model."""
    model = params.get("model", DEFAULT_MODEL)
    if context.models is None or model in context.models:
        return None
    known = ", ".join(sorted(context.models)) or "none"
    return Issue("unknown_model", f"unknown model {model!r} (models: {known})", path="/model")


async def generate(
    context: NodeContext,
    model: str,
    request: GenerationRequest,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """One generation; its tokens are streamed and its usage added to the node's."""
    if context.models is None:
        raise NodeFailure("this engine was started without models", retryable=False)
    try:
        completion = await context.models.generate(model, request, on_text or context.emit_token)
    except ModelError as exc:
        raise NodeFailure(exc.detail, retryable=False) from None
    usage = dict(context.usage or {})
    for key, value in completion.usage.items():
        usage[key] = usage.get(key, 0) + value
    context.usage = usage
    return completion
