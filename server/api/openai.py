"""The OpenAI-compatible front door (SPEC §13): the registry's models (``model:<name>``), saved
agents (``agent:<id>``) and saved workflows (``workflow:<id>``) as chat models.

Each completion is one stored run started by `server.chat.start_chat` with the whole message
list and the request's sampling options. With ``stream: true`` the answering node's tokens
arrive as chat-completion chunks (``stream_options.include_usage`` adds a last chunk with the
usage), ending ``data: [DONE]``. Errors have OpenAI's shape, ``{"error": {"message", "type", …}}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from engine.errors import NodeloomError, NotFound
from engine.models.conversation import Message
from server.api.deps import EngineDep, PrincipalDep
from server.api.events import SSE_HEADERS
from server.chat import ChatFailed, ChatInvalid, ChatOptions, ChatRun, start_chat
from server.state import Engine

_encoder = msgspec.json.Encoder()
MIN_TOP_P = 1e-6


class ContentPart(msgspec.Struct):
    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct):
    # ``developer`` is a system message; tool calls are not taken.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class JsonSchemaSpec(msgspec.Struct):
    schema: dict[str, Any]
    name: str = "output"
    strict: bool | None = None
    description: str | None = None


class TextFormat(msgspec.Struct, tag="text", tag_field="type"):
    pass


class JsonObjectFormat(msgspec.Struct, tag="json_object", tag_field="type"):
    pass


class JsonSchemaFormat(msgspec.Struct, tag="json_schema", tag_field="type"):
    """The answer is JSON valid against ``json_schema.schema``."""

    json_schema: JsonSchemaSpec


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatRequest(msgspec.Struct):
    """The fields nodeloom uses; others OpenAI clients send are accepted and ignored."""

    model: str
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] | None = None
    # ``json_object`` asks for JSON without a schema: taken as plain text here.
    response_format: TextFormat | JsonObjectFormat | JsonSchemaFormat | None = None


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    """OpenAI's error shape."""

    error: ErrorDetail


ERRORS = {
    status: ResponseSpec(ErrorBody, generate_examples=False, description=description)
    for status, description in (
        (400, "Bad request"),
        (401, "Missing or invalid token"),
        (404, "Unknown model"),
        (422, "The target cannot answer (an invalid workflow, or its run failed)"),
    )
}


class OpenAIError(HTTPException):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        super().__init__(detail=message, status_code=status)
        self.kind, self.code = kind, code


def _error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, OpenAIError):
        status, body = exc.status_code, _error_body(exc.detail, exc.kind, exc.code)
    elif isinstance(exc, HTTPException):
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        status, body = exc.status_code, _error_body(exc.detail, kind, None)
    elif isinstance(exc, NotFound):
        status, body = 404, _error_body(exc.detail, "invalid_request_error", "model_not_found")
    elif isinstance(exc, ChatInvalid):
        status, body = 400, _error_body(exc.detail, "invalid_request_error", None)
    elif isinstance(exc, NodeloomError):
        status, body = 422, _error_body(exc.detail, "invalid_request_error", None)
    else:
        status, body = 500, _error_body("the server failed", "server_error", None)
    return Response(body, status_code=status, headers=getattr(exc, "headers", None))


def conversation(messages: list[ChatMessage]) -> list[Message]:
    """The request's messages as a conversation (``developer`` is a system message)."""
    turns = []
    for message in messages:
        content = message.content
        if isinstance(content, list):
            content = "".join(part.text or "" for part in content if part.type == "text")
        role = "system" if message.role == "developer" else message.role
        turns.append(Message(role, content or ""))
    return turns


def options(data: ChatRequest) -> ChatOptions:
    schema = None
    if isinstance(data.response_format, JsonSchemaFormat):
        schema = data.response_format.json_schema.schema
    stop = (data.stop,) if isinstance(data.stop, str) else data.stop
    return ChatOptions(
        temperature=data.temperature,
        # OpenAI takes 0 (the likeliest token only); nodeloom's top_p is above 0.
        top_p=max(data.top_p, MIN_TOP_P) if data.top_p is not None else None,
        max_tokens=data.max_completion_tokens or data.max_tokens,
        stop=tuple(stop) if stop else None,
        seed=data.seed,
        response_schema=schema,
    )


def _failure(exc: ChatFailed) -> OpenAIError:
    record = exc.record
    return OpenAIError(422, exc.detail, "workflow_failed", record.status)


def _chunk(
    run_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> bytes:
    body = {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + _encoder.encode(body) + b"\n\n"


def _usage_chunk(run_id: str, model: str, created: int, usage: dict[str, Any]) -> bytes:
    body = {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    return b"data: " + _encoder.encode(body) + b"\n\n"


async def _stream(run: ChatRun, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    created = int(time.time())
    finished = False
    try:
        yield _chunk(run.run_id, model, created, {"role": "assistant", "content": ""}, None)
        streamed = False
        async for text in run.tokens():
            streamed = True
            yield _chunk(run.run_id, model, created, {"content": text}, None)
        finished = True
        try:
            answer = await run.result()
        except ChatFailed as exc:
            error = _failure(exc)
            yield b"data: " + _encoder.encode(_error_body(error.detail, error.kind, error.code))
            yield b"\n\n"
        else:
            if not streamed:
                yield _chunk(run.run_id, model, created, {"content": answer.text}, None)
            yield _chunk(run.run_id, model, created, {}, answer.finish_reason)
            if include_usage:
                yield _usage_chunk(run.run_id, model, created, answer.usage)
        yield b"data: [DONE]\n\n"
    finally:
        run.close()
        if not finished:  # the client went away: stop generating for it
            run.cancel()


@post(
    "/chat/completions",
    status_code=HTTP_200_OK,
    summary="Answer a conversation with a model, a saved agent or a saved workflow",
    responses=ERRORS,
)
async def chat_completions(
    engine: EngineDep, principal: PrincipalDep, data: JSONBody[ChatRequest]
) -> Response[dict[str, Any]] | Stream:
    run = await start_chat(
        engine, principal, data.model, conversation(data.messages), options(data), trigger="api"
    )
    if data.stream:
        include_usage = data.stream_options is not None and data.stream_options.include_usage
        stream = _stream(run, data.model, include_usage)
        return Stream(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    async with run:
        try:
            answer = await run.result()
        except ChatFailed as exc:
            raise _failure(exc) from None
    body = {
        "id": f"chatcmpl-{answer.record.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": answer.usage,
    }
    return Response(body)


def _model(ident: str, created: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "object": "model", "created": created, "owned_by": "nodeloom",
            "name": name, **extra}  # fmt: skip


async def _listed(engine: Engine, owner_id: str | None) -> list[dict[str, Any]]:
    data = []
    if engine.models is not None:
        statuses = await asyncio.to_thread(engine.models.status)
        data += [
            _model(f"model:{status.name}", 0, status.name)
            for status in statuses
            if status.available
        ]
    cursor = None
    while True:
        agents = await engine.runs.agents.list(owner_id=owner_id, limit=200, cursor=cursor)
        data += [
            _model(f"agent:{a.id}", int(a.created_at.timestamp()), a.config.name)
            for a in agents.items
        ]
        if (cursor := agents.next_cursor) is None:
            break
    while True:
        page = await engine.workflows.list_workflows(owner_id=owner_id, limit=200, cursor=cursor)
        data += [
            _model(f"workflow:{item['id']}", int(item["created_at"].timestamp()), item["name"])
            for item in page.items
        ]
        if (cursor := page.next_cursor) is None:
            return data


@get(
    "/models",
    summary="The registry's models, saved agents and saved workflows as chat models",
    responses=ERRORS,
)
async def models(engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"object": "list", "data": await _listed(engine, principal.owner_id)}


OpenAIController = Router(
    path="/v1",
    route_handlers=[chat_completions, models],
    tags=["openai"],
    # Keyed like the app's own handlers, so that these win for every error under /v1.
    exception_handlers={
        HTTPException: openai_error,
        NodeloomError: openai_error,
        Exception: openai_error,
    },
)
