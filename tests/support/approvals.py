"""Workflows that wait for a person (SPEC §16): as the engine takes them and as the API does."""

from __future__ import annotations

from typing import Any

from tests.support.documents import workflow

__all__ = ["APPROVAL", "APPROVAL_DOCUMENT", "asking"]

# A draft put to a person: publish it or shelve it (the answer's choice routes).
APPROVAL = workflow(
    [
        {"id": "draft", "type": "input", "params": {"name": "draft", "default": "a memo"}},
        {
            "id": "ask",
            "type": "human_input",
            "params": {"prompt": "Publish {{ context }}?", "choices": ["yes", "no"]},
        },
        {"id": "publish", "type": "template", "params": {"template": "Published {{ x }}."}},
        {"id": "shelve", "type": "template", "params": {"template": "Shelved {{ x }}."}},
        {"id": "published", "type": "output", "params": {"name": "published"}},
        {"id": "shelved", "type": "output", "params": {"name": "shelved"}},
        {"id": "decision", "type": "output", "params": {"name": "decision"}},
    ],
    [
        ("draft.value", "ask.context"),
        ("ask.yes", "publish.x"),
        ("ask.no", "shelve.x"),
        ("publish.text", "published.value"),
        ("shelve.text", "shelved.value"),
        ("ask.answer", "decision.value"),
    ],
)


def asking(**params: Any) -> Any:
    """A workflow of one `human_input` node with these params, its answer its output."""
    return workflow(
        [
            {"id": "ask", "type": "human_input", "params": params},
            {"id": "out", "type": "output", "params": {"name": "answer"}},
        ],
        [("ask.answer", "out.value")],
    )


# A draft put to a person as a JSON document for the API: how many copies (an integer).
APPROVAL_DOCUMENT: dict[str, Any] = {
    "schema_version": 1,
    "name": "Approval",
    "nodes": [
        {"id": "draft", "type": "input", "params": {"name": "draft", "default": "a memo"}},
        {
            "id": "ask",
            "type": "human_input",
            "params": {
                "prompt": "How many copies of {{ context }}?",
                "schema": {"type": "integer", "minimum": 1},
            },
        },
        {"id": "say", "type": "template", "params": {"template": "{{ n }} copies"}},
        {"id": "out", "type": "output", "params": {"name": "copies"}},
    ],
    "edges": [
        {"from": "draft.value", "to": "ask.context"},
        {"from": "ask.answer", "to": "say.n"},
        {"from": "say.text", "to": "out.value"},
    ],
}
