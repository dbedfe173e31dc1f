"""Conversations over real HTTP (SPEC §13), answered by the embedded model and by workflows:
turns stored with the runs that answered them, answers streamed, branches by editing a question
and by regenerating an answer, delete, and bad requests refused with nothing stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import ServerConfig
from tests.support.accounts import tokens_for
from tests.support.api import LiveServer, parse
from tests.support.documents import ROOT
from tests.support.nodes import api_test_registry

MODEL = "model:gemma-3-270m"
OPTIONS = {"temperature": 0, "seed": 7, "max_tokens": 12}
ECHO: dict[str, Any] = {
    "schema_version": 1,
    "name": "Echo",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "question", "schema": {"type": "string"}}},
        {"id": "say", "type": "template", "params": {"template": "echo: {{ question }}"}},
        {"id": "out", "type": "output", "params": {"name": "answer"}},
    ],
    "edges": [{"from": "q.value", "to": "say.question"}, {"from": "say.text", "to": "out.value"}],
}
FAILING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Failing",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "question", "schema": {"type": "string"}}},
        {"id": "boom", "type": "flaky", "params": {"retryable": False}},
        {"id": "out", "type": "output", "params": {"name": "answer"}},
    ],
    "edges": [{"from": "q.value", "to": "boom.x"}, {"from": "boom.y", "to": "out.value"}],
}

SLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Slow",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "question", "schema": {"type": "string"}}},
        {"id": "words", "type": "stream", "params": {"words": 20, "delay_s": 0.05}},
        {"id": "out", "type": "output", "params": {"name": "answer"}},
    ],
    "edges": [{"from": "q.value", "to": "words.prompt"}, {"from": "words.text", "to": "out.value"}],
}


class Users:
    def __init__(self, url: str, ada: str, bob: str) -> None:
        self.ada = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ada}"}, timeout=120
        )
        self.bob = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {bob}"}, timeout=60
        )


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory, embedded_model: Path) -> Iterator[Users]:
    root = tmp_path_factory.mktemp("conversations")
    url = f"sqlite+aiosqlite:///{root}/conversations.db"
    ada, bob = asyncio.run(tokens_for(url, "ada", "bob"))
    config = ServerConfig(
        database_url=url,
        workspace=root / "workspace",
        models_dir=ROOT / "models",
        lease_timeout_s=5,
    )
    with LiveServer(create_app(config, registry=api_test_registry()), url) as server:
        both = Users(server.url, ada, bob)
        yield both
        both.ada.close()
        both.bob.close()


def conversation_with(client: httpx.Client, document: dict[str, Any]) -> str:
    saved = client.post("/api/workflows", json=document)
    assert saved.status_code == 201, saved.text
    created = client.post("/api/conversations", json={"target": f"workflow:{saved.json()['id']}"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def ask(client: httpx.Client, conversation_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/api/conversations/{conversation_id}/messages", json=body)


def messages_of(client: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    found = client.get(f"/api/conversations/{conversation_id}")
    assert found.status_code == 200, found.text
    return list(found.json()["messages"])


def test_turns_with_the_model_are_stored_with_their_runs(users: Users) -> None:
    client = users.ada
    created = client.post("/api/conversations", json={"target": MODEL})
    assert created.status_code == 201, created.text
    conversation = created.json()
    assert conversation["id"].startswith("conv_")
    assert conversation["title"] is None
    first = ask(client, conversation["id"], content="Name a colour.", options=OPTIONS)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["role"] == "assistant"
    assert answer["content"].strip()
    assert answer["usage"]["completion_tokens"] > 0
    assert answer["usage"]["model"] == "gemma-3-270m"
    second = ask(client, conversation["id"], content="And another one?", options=OPTIONS)
    assert second.status_code == 201, second.text

    found = client.get(f"/api/conversations/{conversation['id']}").json()
    assert found["title"] == "Name a colour."  # the first question names it
    q1, a1, q2, a2 = found["messages"]
    assert [m["role"] for m in found["messages"]] == ["user", "assistant", "user", "assistant"]
    assert (q1["parent_id"], a1["parent_id"], q2["parent_id"], a2["parent_id"]) == (
        None, q1["id"], a1["id"], q2["id"]
    )  # fmt: skip
    assert a1 == answer
    assert set(a1) == {"id", "role", "content", "parent_id", "run_id", "usage", "created_at"}
    total = a1["usage"]["total_tokens"] + a2["usage"]["total_tokens"]
    assert found["usage"]["total_tokens"] == total
    assert found["usage"]["cost"] == 0

    run = client.get(f"/api/runs/{a2['run_id']}").json()
    assert run["status"] == "succeeded"
    assert run["trigger"] == f"conversation:{conversation['id']}"
    assert run["inputs"]["messages"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": a1["content"]},
        {"role": "user", "content": "And another one?"},
    ]
    listed = client.get("/api/conversations").json()["items"]
    assert listed[0]["id"] == conversation["id"]


def test_a_conversation_with_a_saved_agent(users: Users) -> None:
    client = users.ada
    agent = client.post(
        "/api/agents", json={"name": "Namer", "model": "gemma-3-270m", "max_steps": 1}
    ).json()
    created = client.post("/api/conversations", json={"target": f"agent:{agent['id']}"})
    assert created.status_code == 201, created.text
    conversation_id = created.json()["id"]

    def turn(content: str) -> list[dict[str, Any]]:
        body = {"content": content, "stream": True, "options": {**OPTIONS, "max_tokens": 40}}
        with client.stream(
            "POST", f"/api/conversations/{conversation_id}/messages", json=body
        ) as response:
            assert response.status_code == 200
            return parse(response.read().decode())

    first = turn("My name is Zorblat.")
    second = turn("What is my name?")
    # Whatever the tiny model made of the first turn, the second run was given all of it.
    run = client.get(f"/api/runs/{second[0]['data']['run_id']}").json()
    assert run["trigger"] == f"conversation:{conversation_id}"
    said = [m["content"] for m in run["inputs"]["messages"]]
    answered = [f["data"]["content"] for f in first if f["event"] == "message"]
    assert said == ["My name is Zorblat.", *answered, "What is my name?"]
    assert "answer" in run["nodes"]  # the agent node of the run made for the agent target
    # Another user's agent is no target of theirs.
    refused = users.bob.post("/api/conversations", json={"target": f"agent:{agent['id']}"})
    assert refused.status_code == 422
    assert agent["id"] in refused.json()["detail"]


def test_an_answer_streams_then_is_stored(users: Users) -> None:
    client = users.ada
    conversation_id = client.post("/api/conversations", json={"target": MODEL}).json()["id"]
    with client.stream(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "Count: one, two,", "stream": True, "options": OPTIONS},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = parse(response.read().decode())
    kinds = [frame["event"] for frame in frames]
    assert kinds[0] == "start"
    assert kinds[-1] == "message"
    assert kinds.count("token") >= 2
    start, stored = frames[0]["data"], frames[-1]["data"]
    streamed = "".join(f["data"]["text"] for f in frames if f["event"] == "token")
    assert stored["content"].strip() == streamed.strip()
    assert stored["run_id"] == start["run_id"]
    assert stored["parent_id"] == start["question"]["id"]
    assert messages_of(client, conversation_id) == [start["question"], stored]


def test_branches_by_editing_and_regenerating(users: Users) -> None:
    client = users.ada
    conversation_id = conversation_with(client, ECHO)
    a1 = ask(client, conversation_id, content="one").json()
    a2 = ask(client, conversation_id, content="two").json()
    assert a2["content"] == "echo: two"
    # Edit the second question: a sibling of it, under the same answer.
    a2b = ask(client, conversation_id, content="deux", parent_id=a1["id"]).json()
    # Regenerate the first answer: only parent_id, naming the question.
    a1b = ask(client, conversation_id, parent_id=a1["parent_id"]).json()
    # Edit the first question: a new root.
    a1c = ask(client, conversation_id, content="uno", parent_id=None).json()
    # Absent parent_id: after the message stored last.
    a3 = ask(client, conversation_id, content="tres").json()

    messages = messages_of(client, conversation_id)
    by_id = {m["id"]: m for m in messages}
    q1, q2, q2b, q1c, q3 = (by_id[a["parent_id"]] for a in (a1, a2, a2b, a1c, a3))
    assert (q2["parent_id"], q2b["parent_id"]) == (a1["id"], a1["id"])
    assert q2b["content"] == "deux"
    assert a2b["content"] == "echo: deux"
    assert a1b["parent_id"] == q1["id"]
    assert a1b["content"] == "echo: one"
    assert a1b["run_id"] != a1["run_id"]
    assert (q1c["parent_id"], q1c["content"]) == (None, "uno")
    assert q3["parent_id"] == a1c["id"]
    assert len(messages) == 2 * 6 - 1  # six answers, five questions (one answered twice)

    def path(message_id: str) -> list[str]:
        found = []
        while message_id is not None:
            found.append(by_id[message_id]["content"])
            message_id = by_id[message_id]["parent_id"]
        return found[::-1]

    assert path(a2b["id"]) == ["one", "echo: one", "deux", "echo: deux"]
    assert path(a3["id"]) == ["uno", "echo: uno", "tres", "echo: tres"]
    run = client.get(f"/api/runs/{a2b['run_id']}").json()
    assert run["inputs"] == {"question": "deux"}


def test_delete(users: Users) -> None:
    client = users.ada
    conversation_id = conversation_with(client, ECHO)
    answer = ask(client, conversation_id, content="keep the run").json()
    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 204
    assert client.get(f"/api/conversations/{conversation_id}").status_code == 404
    assert conversation_id not in [
        c["id"] for c in client.get("/api/conversations").json()["items"]
    ]
    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 404
    assert client.get(f"/api/runs/{answer['run_id']}").status_code == 200


def test_bad_requests_are_refused_and_nothing_is_stored(users: Users) -> None:
    client = users.ada
    before = client.get("/api/conversations").json()["items"]
    for target in ("model:nothing", "agent:ag_nothing", "workflow:wf_nothing", "gpt-4"):
        refused = client.post("/api/conversations", json={"target": target})
        assert refused.status_code == 422, refused.text
        assert target in refused.json()["detail"]
        assert refused.json()["errors"][0]["path"] == "/target"
    assert client.get("/api/conversations").json()["items"] == before

    conversation_id = conversation_with(client, ECHO)
    answer = ask(client, conversation_id, content="first").json()
    other_id = conversation_with(client, ECHO)
    foreign = ask(client, other_id, content="elsewhere").json()
    stored = messages_of(client, conversation_id)

    def refused(status: int, field: str | None, **body: Any) -> str:
        response = ask(client, conversation_id, **body)
        assert response.status_code == status, response.text
        if field is not None:
            assert response.json()["errors"][0]["path"] == f"/{field}"
        return str(response.json()["detail"])

    assert "empty" in refused(422, "content", content="")
    assert "empty" in refused(422, "content", content="  \n ")
    assert "content is required" in refused(422, "content")
    assert "content is required" in refused(422, "content", parent_id=None)
    assert foreign["id"] in refused(422, "parent_id", content="x", parent_id=foreign["id"])
    assert "parent_id" in refused(422, "parent_id", content="x", parent_id=foreign["id"])
    assert "msg_nothing" in refused(422, "parent_id", parent_id="msg_nothing")
    assert "is an answer" in refused(422, "parent_id", parent_id=answer["id"])
    refused(400, None, content="x", colour="blue")
    refused(400, None, content=3)
    assert messages_of(client, conversation_id) == stored

    theirs = users.bob
    assert theirs.get(f"/api/conversations/{conversation_id}").status_code == 404
    assert ask(theirs, conversation_id, content="mine now").status_code == 404
    assert theirs.delete(f"/api/conversations/{conversation_id}").status_code == 404
    assert conversation_id not in [
        c["id"] for c in theirs.get("/api/conversations").json()["items"]
    ]
    assert messages_of(client, conversation_id) == stored


def test_a_failed_answer_keeps_the_question_and_nothing_else(users: Users) -> None:
    client = users.ada
    conversation_id = conversation_with(client, FAILING)
    failed = ask(client, conversation_id, content="will it work?")
    assert failed.status_code == 422, failed.text
    assert "the answer failed" in failed.json()["detail"]
    assert "failed" in failed.json()["detail"]
    [question] = messages_of(client, conversation_id)
    assert (question["role"], question["content"]) == ("user", "will it work?")

    with client.stream(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        json={"parent_id": question["id"], "stream": True},
    ) as response:
        frames = parse(response.read().decode())
    assert [f["event"] for f in frames] == ["start", "error"]
    assert frames[0]["data"]["question"] == question  # answered again, not asked again
    assert frames[1]["data"]["run_id"] == frames[0]["data"]["run_id"]
    run = client.get(f"/api/runs/{frames[1]['data']['run_id']}").json()
    assert run["status"] == "failed"
    assert messages_of(client, conversation_id) == [question]


def test_a_stopped_answer_and_one_whose_client_went_away(users: Users) -> None:
    client = users.ada
    conversation_id = conversation_with(client, SLOW)
    url = f"/api/conversations/{conversation_id}/messages"
    with client.stream("POST", url, json={"content": "go", "stream": True}) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: start"
        run_id = parse(next(lines) + "\n\n")[0]["data"]["run_id"]
        assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200
        frames = parse("\n".join(lines))
    assert frames[-1]["event"] == "error"
    assert "cancelled" in frames[-1]["data"]["detail"]
    [question] = messages_of(client, conversation_id)
    assert question["content"] == "go"

    with client.stream("POST", url, json={"content": "again", "stream": True}) as response:
        assert next(response.iter_lines()) == "event: start"
    # The client is gone; the answer is stored all the same.
    deadline = time.monotonic() + 10
    while len(messages_of(client, conversation_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    answer = messages_of(client, conversation_id)[-1]
    assert answer["role"] == "assistant"
    assert answer["content"] == " ".join(f"word{n}" for n in range(20)) + " "
