"""What the nodes that call models (`llm`, `agent`, `aggregate` in `synthesis` mode) share: the
`unknown_model` check, the `fallbacks` param, and one generation with its usage (tokens, the
model that answered, cost) added to the node's and its failure turned into a node failure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.execution.reasons import Reason
from engine.models import DEFAULT_MODEL, Completion, GenerationRequest, ModelError
from engine.nodes.types import CheckContext, NodeContext

FALLBACKS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "default": [],
    "description": "Models tried in order when `model` fails (an error, a timeout, unavailable).",
}


def model_issue(params: Mapping[str, Any], context: CheckContext) -> Issue | None:
    """`unknown_model` when the `model` param names no registered model."""
    issues = model_issues(params, context, fallbacks=False)
    return issues[0] if issues else None


def model_issues(
    params: Mapping[str, Any], context: CheckContext, *, fallbacks: bool = True
) -> list[Issue]:
    """`unknown_model` for the `model` param and each of the `fallbacks` naming no model."""
    if context.models is None:
        return []
    known = ", ".join(sorted(context.models)) or "none"
    named = [("/model", params.get("model", DEFAULT_MODEL))]
    if fallbacks:
        named += [(f"/fallbacks/{i}", m) for i, m in enumerate(params.get("fallbacks", []))]
    return [
        Issue("unknown_model", f"unknown model {model!r} (models: {known})", path=path)
        for path, model in named
        if isinstance(model, str) and model not in context.models
    ]


async def generate(
    context: NodeContext,
    model: str,
    request: GenerationRequest,
    on_text: Callable[[str], None] | None = None,
    *,
    fallbacks: Sequence[str] = (),
) -> Completion:
    """One generation by ``model``, else by each of ``fallbacks`` in turn while the one before
    fails; its tokens are streamed and its usage (tokens, the model that answered, cost when
    the registry prices it) added to the node's. A fallback's answer sets the node's reason
    (``fallback: <model> after <error>``)."""
    models = context.models
    if models is None:
        raise NodeFailure("this engine was started without models", retryable=False)
    first_error: str | None = None
    for name in (model, *fallbacks):
        try:
            if request.messages:
                fitted = await models.fit(name, request.messages, request.max_tokens)
                request = msgspec.structs.replace(request, messages=fitted)
            completion = await models.generate(name, request, on_text or context.emit_token)
        except ModelError as exc:
            first_error = first_error or exc.detail
            continue
        if name != model:
            context.reason = Reason("fallback", (name, first_error or ""))
        _add_usage(context, name, completion, models.cost(name, *_tokens(completion)))
        return completion
    tried = f" (fallbacks tried: {', '.join(fallbacks)})" if fallbacks else ""
    raise NodeFailure(f"{first_error}{tried}", retryable=False)


def _tokens(completion: Completion) -> tuple[int, int]:
    return completion.prompt_tokens, completion.completion_tokens


def _add_usage(
    context: NodeContext, model: str, completion: Completion, cost: float | None
) -> None:
    usage = dict(context.usage or {})
    usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + completion.prompt_tokens
    usage["completion_tokens"] = usage.get("completion_tokens", 0) + completion.completion_tokens
    usage["model"] = model
    if cost is not None:
        usage["cost"] = usage.get("cost", 0.0) + cost
    context.usage = usage
