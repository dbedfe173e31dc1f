"""``/api/conversations`` (SPEC §13): conversations with a model, an agent or a workflow, each
answer a stored run. Messages form a tree; ``parent_id`` on a new message says where it goes:

- absent: after the message stored last (the conversation goes on);
- an answer's id, or ``null`` for a new first question: a branch from there (an edited question
  is a new message with the same parent as the one it replaces);
- a question's id, with no ``content``: that question answered again (regenerate), a sibling of
  its earlier answers.

With ``"stream": true`` the answer comes as Server-Sent Events: ``start`` (``run_id`` and the
question as stored), ``token`` (``text``) as the model writes, then ``message`` (the answer as
stored) or ``error`` (``detail``, ``run_id``: the run failed or was cancelled; the question
stays, unanswered)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from engine.errors import NodeloomError
from engine.storage.conversations import Conversation, Message
from server.api.deps import EngineDep, PrincipalDep, paged
from server.api.events import SSE_HEADERS
from server.api.schemas import Cursor, Limit
from server.chat import ChatFailed, ChatOptions
from server.conversations import Answering, TurnInvalid, begin, check_target, prepare, usage_sum
from server.problems import ApiError, ErrorItem, documented

_encoder = msgspec.json.Encoder()
Text = Annotated[str, msgspec.Meta(max_length=1_000_000)]


class NewConversation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    target: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    title: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class NewMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A question (``content``), or, with only ``parent_id`` naming a question, that question
    answered again. ``parent_id``: see the module's description."""

    content: Text | None = None
    parent_id: str | msgspec.UnsetType | None = msgspec.UNSET
    stream: bool = False
    options: ChatOptions | None = None


class ConversationPage(msgspec.Struct, kw_only=True):
    items: list[Conversation]
    next_cursor: str | None = None


class ConversationUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float


class ConversationDetail(msgspec.Struct, kw_only=True):
    id: str
    target: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    messages: list[Message]
    usage: ConversationUsage  # every answer's, all branches


def _invalid(exc: TurnInvalid) -> ApiError:
    return ApiError(
        422,
        exc.detail,
        errors=[ErrorItem(f"invalid_{exc.field}", exc.detail, path=f"/{exc.field}")],
    )


def _failed(exc: ChatFailed) -> ApiError:
    detail = f"the answer failed: {exc.detail}"
    return ApiError(422, detail, errors=[ErrorItem("answer_failed", detail, path=None)])


def _frame(event: str, data: Any) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (event.encode(), _encoder.encode(data))


async def _frames(answering: Answering) -> AsyncIterator[bytes]:
    chat = answering.chat
    try:
        yield _frame("start", {"run_id": chat.run_id, "question": answering.question})
        async for text in chat.tokens():
            yield _frame("token", {"text": text})
        try:
            # Shielded: a client that goes away stops the stream, not the answer being stored.
            answer = await asyncio.shield(answering.finished)
        except NodeloomError as exc:
            detail = f"the answer failed: {exc.detail}"
            yield _frame("error", {"detail": detail, "run_id": chat.run_id})
            return
        yield _frame("message", answer)
    finally:
        chat.close()


ANSWER = ResponseSpec(Message, generate_examples=False, description="The answer as stored")
STREAMED = ResponseSpec(
    str,
    generate_examples=False,
    media_type="text/event-stream",
    description="With `stream`: `start`, `token`s, then `message` or `error` (Server-Sent Events)",
)


class ConversationController(Controller):
    path = "/api/conversations"
    tags = ["conversations"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Start a conversation with model:<name>, agent:<id> or workflow:<id>",
        responses=documented(422),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[NewConversation]
    ) -> Conversation:
        try:
            await check_target(engine, principal, data.target)
        except TurnInvalid as exc:
            raise _invalid(exc) from None
        title = data.title.strip() if data.title and data.title.strip() else None
        return await engine.conversations.create(
            data.target, title=title, owner_id=principal.owner_id
        )

    @get("/", summary="The caller's conversations, most recently active first",
         responses=documented())  # fmt: skip
    async def list_conversations(
        self, engine: EngineDep, principal: PrincipalDep, limit: Limit = 50, cursor: Cursor = None
    ) -> ConversationPage:
        page = await paged(
            lambda: engine.conversations.listing(
                owner_id=principal.owner_id, limit=limit, cursor=cursor
            )
        )
        return ConversationPage(items=page.items, next_cursor=page.next_cursor)

    @get(
        "/{conversation_id:str}",
        summary="A conversation with all its messages (every branch) and their usage",
        responses=documented(404),
    )
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, conversation_id: FromPath[str]
    ) -> ConversationDetail:
        found = await engine.conversations.get(conversation_id, owner_id=principal.owner_id)
        messages = await engine.conversations.messages(conversation_id)
        return ConversationDetail(
            id=found.id,
            target=found.target,
            title=found.title,
            created_at=found.created_at,
            updated_at=found.updated_at,
            messages=messages,
            usage=msgspec.convert(usage_sum(messages), ConversationUsage),
        )

    @post(
        "/{conversation_id:str}/messages",
        status_code=HTTP_201_CREATED,
        summary="Ask (or answer a question again); answers the assistant's message",
        description=__doc__,
        responses={201: ANSWER, 200: STREAMED, **documented(404, 422)},
    )
    async def ask(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        conversation_id: FromPath[str],
        data: JSONBody[NewMessage],
    ) -> Response[Message] | Stream:
        conversation = await engine.conversations.get(conversation_id, owner_id=principal.owner_id)
        latest = data.parent_id is msgspec.UNSET
        parent_id = None if isinstance(data.parent_id, msgspec.UnsetType) else data.parent_id
        try:
            turn = await prepare(engine, conversation, data.content, parent_id, latest=latest)
        except TurnInvalid as exc:
            raise _invalid(exc) from None
        answering = await begin(engine, principal, turn, data.options or ChatOptions())
        if data.stream:
            return Stream(
                _frames(answering),
                status_code=HTTP_200_OK,
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        answering.chat.close()
        try:
            answer = await asyncio.shield(answering.finished)
        except ChatFailed as exc:
            raise _failed(exc) from None
        return Response(answer, status_code=HTTP_201_CREATED)

    @delete(
        "/{conversation_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a conversation and its messages (the runs that answered stay)",
        responses=documented(404),
    )
    async def remove(
        self, engine: EngineDep, principal: PrincipalDep, conversation_id: FromPath[str]
    ) -> None:
        await engine.conversations.delete(conversation_id, owner_id=principal.owner_id)
