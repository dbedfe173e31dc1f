"""Conversations as stored, on SQLite and a real PostgreSQL (SPEC §13): a tree of messages whose
paths are read back in order, the title taken from the first question, owners kept apart, and
the tables as the migration makes them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.errors import NotFound
from engine.storage.conversations import TITLE_CHARS, ConversationStore, title_of
from engine.storage.database import Database
from engine.storage.tables import Base


@pytest.fixture
def store(database: Database) -> ConversationStore:
    return ConversationStore(database)


async def test_a_tree_of_messages_and_the_paths_through_it(store: ConversationStore) -> None:
    conversation = await store.create("model:gemma-3-270m", owner_id="usr_a")
    assert conversation.id.startswith("conv_")
    assert conversation.title is None
    q1 = await store.append(conversation.id, role="user", content="Hi there", parent_id=None)
    a1 = await store.append(
        conversation.id,
        role="assistant",
        content="Hello!",
        parent_id=q1.id,
        run_id="run_1",
        usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    )
    q2 = await store.append(conversation.id, role="user", content="And then?", parent_id=a1.id)
    a2 = await store.append(conversation.id, role="assistant", content="Then.", parent_id=q2.id)
    # An edited second question: a sibling of q2, and its own answer.
    q2b = await store.append(conversation.id, role="user", content="Why?", parent_id=a1.id)
    a2b = await store.append(conversation.id, role="assistant", content="So.", parent_id=q2b.id)

    down_a2 = await store.history(conversation.id, a2.id)
    assert [m.id for m in down_a2] == [q1.id, a1.id, q2.id, a2.id]
    assert [m.content for m in down_a2] == ["Hi there", "Hello!", "And then?", "Then."]
    assert [m.id for m in await store.history(conversation.id, None)] == [
        q1.id, a1.id, q2b.id, a2b.id
    ]  # fmt: skip
    assert [m.id for m in await store.history(conversation.id, q1.id)] == [q1.id]
    everything = await store.messages(conversation.id)
    assert [m.id for m in everything] == [q1.id, a1.id, q2.id, a2.id, q2b.id, a2b.id]
    assert everything[1].run_id == "run_1"
    assert everything[1].usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert everything[2].parent_id == a1.id
    assert everything[4].parent_id == a1.id
    assert everything[0].created_at.tzinfo is not None

    again = await store.get(conversation.id, owner_id="usr_a")
    assert again.title == "Hi there"  # the first question names it
    assert again.updated_at > conversation.updated_at


async def test_a_message_of_another_conversation_is_no_parent(store: ConversationStore) -> None:
    one = await store.create("model:m")
    other = await store.create("model:m")
    foreign = await store.append(other.id, role="user", content="elsewhere", parent_id=None)
    assert await store.history(one.id, foreign.id) == []
    assert await store.history(one.id, None) == []
    assert await store.message(one.id, foreign.id) is None
    assert await store.message(other.id, foreign.id) == foreign
    with pytest.raises(NotFound, match=f"message {foreign.id} is not in conversation {one.id}"):
        await store.append(one.id, role="user", content="x", parent_id=foreign.id)
    assert await store.messages(one.id) == []
    with pytest.raises(NotFound, match="conversation conv_gone not found"):
        await store.append("conv_gone", role="user", content="x", parent_id=None)


async def test_owners_listing_newest_first_and_delete(store: ConversationStore) -> None:
    first = await store.create("model:m", title="first", owner_id="usr_a")
    second = await store.create("agent:ag_1", title="second", owner_id="usr_a")
    theirs = await store.create("model:m", title="theirs", owner_id="usr_b")
    await store.append(first.id, role="user", content="bump", parent_id=None)

    page = await store.listing(owner_id="usr_a")
    assert [c.id for c in page.items] == [first.id, second.id]  # the active one first
    assert first.title == "first"
    assert (await store.get(first.id)).title == "first"
    paged = await store.listing(owner_id="usr_a", limit=1)
    assert [c.id for c in paged.items] == [first.id]
    assert paged.next_cursor
    rest = await store.listing(owner_id="usr_a", limit=1, cursor=paged.next_cursor)
    assert [c.id for c in rest.items] == [second.id]

    with pytest.raises(NotFound):
        await store.get(theirs.id, owner_id="usr_a")
    with pytest.raises(NotFound):
        await store.delete(theirs.id, owner_id="usr_a")
    await store.delete(first.id, owner_id="usr_a")
    with pytest.raises(NotFound):
        await store.get(first.id)
    assert await store.messages(first.id) == []
    assert (await store.get(theirs.id)).title == "theirs"


async def test_appends_at_once_are_numbered_apart(store: ConversationStore) -> None:
    conversation = await store.create("model:m")
    root = await store.append(conversation.id, role="user", content="root", parent_id=None)
    await asyncio.gather(
        *(
            store.append(conversation.id, role="assistant", content=str(n), parent_id=root.id)
            for n in range(8)
        )
    )
    stored = await store.messages(conversation.id)
    assert len(stored) == 9
    assert sorted(m.content for m in stored[1:]) == [str(n) for n in range(8)]


async def test_a_thousand_message_path_comes_back_whole(store: ConversationStore) -> None:
    conversation = await store.create("model:m")
    parent = None
    for n in range(1000):
        role = "user" if n % 2 == 0 else "assistant"
        message = await store.append(conversation.id, role=role, content=str(n), parent_id=parent)
        parent = message.id
    path = await store.history(conversation.id, None)
    assert [m.content for m in path] == [str(n) for n in range(1000)]


def test_titles_from_the_first_question() -> None:
    assert title_of("  \n Where is the moon?\nsecond line") == "Where is the moon?"
    long = "word " * 40
    title = title_of(long)
    assert title.endswith(" …")
    assert len(title) <= TITLE_CHARS + 2
    assert title_of("x" * 100) == "x" * TITLE_CHARS + " …"


async def test_the_migration_makes_the_tables_as_declared(database: Database) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection)
        return [
            diff
            for diff in compare_metadata(context, Base.metadata)
            if any(name in str(diff) for name in ("conversations", "messages"))
        ]

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
