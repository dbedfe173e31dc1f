"""A turn of a conversation (SPEC §13): the question stored, the history down to it sent through
`start_chat` (one stored run, triggered ``conversation:<id>``), the answer stored with its run
and usage.

A turn is checked whole before anything is stored: the conversation is the caller's, the parent
is one of its messages, the question is not empty, and the target can be started. The question is
stored once its run has started; the answer once the run succeeded, so a failed or cancelled run
leaves the question without an answer (to be regenerated) and never half an answer. The answer is
stored even if the client that asked went away while it was generated."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from engine.errors import NodeloomError, NotFound, describe
from engine.models.conversation import Message as ChatMessage
from engine.storage.conversations import Conversation, Message, Said
from server.auth import Principal
from server.chat import KINDS, ChatFailed, ChatOptions, ChatRun, start_chat
from server.state import Engine

__all__ = ["Answering", "TurnInvalid", "begin", "check_target", "prepare", "usage_sum"]

log = structlog.get_logger("nodeloom.conversations")
_finishing: set[asyncio.Task[Message]] = set()  # answers being stored, kept from the collector


class TurnInvalid(NodeloomError, ValueError):
    """A request that cannot make a turn; ``field`` names the body field at fault (a 422)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


@dataclass(frozen=True)
class Turn:
    """What a turn answers: ``history`` (root first) ends with the question, a new one to store
    under ``parent_id``, or ``asked``, a stored question answered again."""

    conversation: Conversation
    history: list[Said]
    parent_id: str | None
    asked: Message | None = None


async def check_target(engine: Engine, principal: Principal, target: str) -> None:
    """`TurnInvalid` (naming ``target``) unless ``target`` is a model, or one of the caller's
    agents or workflows."""
    kind, _, name = target.partition(":")
    if kind not in KINDS or not name:
        raise TurnInvalid(
            "target", f"target {target!r}: use model:<name>, agent:<id> or workflow:<id>"
        )
    try:
        if kind == "model":
            known = engine.models is not None and name in engine.models.names
        elif kind == "agent":
            known = bool(await engine.runs.agents.get(name, owner_id=principal.owner_id))
        else:
            known = bool(await engine.workflows.current_version(name, owner_id=principal.owner_id))
    except NotFound:
        known = False
    if not known:
        raise TurnInvalid("target", f"target {target!r}: no such {kind} (or not yours)")


async def prepare(
    engine: Engine,
    conversation: Conversation,
    content: str | None,
    parent_id: str | None,
    *,
    latest: bool,
) -> Turn:
    """The turn a request asks for. ``latest``: no parent was named, so the question follows
    the message stored last; else ``parent_id`` (None: a new first question)."""
    store = engine.conversations
    if content is None:
        if latest or parent_id is None:
            raise TurnInvalid(
                "content",
                "content is required; to answer a question again, send only parent_id naming it",
            )
        history = await store.history(conversation.id, parent_id)
        if not history:
            raise _foreign(parent_id, conversation.id)
        if history[-1].role != "user":
            raise TurnInvalid(
                "parent_id",
                f"parent_id {parent_id} is an answer: to answer again, name the question it "
                "answers (a user message)",
            )
        asked = await store.message(conversation.id, parent_id)
        return Turn(conversation, history, parent_id, asked)
    if not content.strip():
        raise TurnInvalid("content", "content is empty")
    history = []
    if latest or parent_id is not None:
        history = await store.history(conversation.id, parent_id)
        if parent_id is not None and not history:
            raise _foreign(parent_id, conversation.id)
    parent = history[-1].id if history else None
    return Turn(conversation, [*history, Said("", "user", content)], parent)


def _foreign(parent_id: str, conversation_id: str) -> TurnInvalid:
    return TurnInvalid(
        "parent_id", f"parent_id {parent_id} is not a message of conversation {conversation_id}"
    )


@dataclass(eq=False)
class Answering:
    """A turn whose run has started: the question as stored, the run, and the answer to come
    (`finished`: the stored answer, or `ChatFailed`)."""

    question: Message
    chat: ChatRun
    finished: asyncio.Task[Message]


async def begin(
    engine: Engine, principal: Principal, turn: Turn, options: ChatOptions
) -> Answering:
    """Start the turn's run, store its question, and store the answer once it comes."""
    conversation = turn.conversation
    chat = await start_chat(
        engine,
        principal,
        conversation.target,
        [ChatMessage(m.role, m.content) for m in turn.history],  # type: ignore[arg-type]
        options,
        trigger=f"conversation:{conversation.id}",
    )
    try:
        question = turn.asked or await engine.conversations.append(
            conversation.id,
            role="user",
            content=turn.history[-1].content,
            parent_id=turn.parent_id,
        )
    except BaseException:
        chat.cancel()
        chat.close()
        raise
    task = asyncio.create_task(_answer(engine, conversation.id, question.id, chat))
    _finishing.add(task)
    task.add_done_callback(_settled)
    return Answering(question, chat, task)


async def _answer(engine: Engine, conversation_id: str, question_id: str, chat: ChatRun) -> Message:
    answer = await chat.result()
    return await engine.conversations.append(
        conversation_id,
        role="assistant",
        content=answer.text,
        parent_id=question_id,
        run_id=chat.run_id,
        usage=dict(answer.usage),
    )


def _settled(task: asyncio.Task[Message]) -> None:
    _finishing.discard(task)
    if task.cancelled():
        return
    failure = task.exception()
    if failure is not None and not isinstance(failure, ChatFailed):  # told to the asker
        log.error("storing an answer failed", error=describe(failure))


def usage_sum(messages: list[Message]) -> dict[str, Any]:
    """The tokens and cost of every answer of a conversation, all branches."""
    total: dict[str, Any] = {
        "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0.0
    }  # fmt: skip
    for message in messages:
        usage: Mapping[str, Any] = message.usage or {}
        for key in total:
            value = usage.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] += value
    return total
