"""Bodies as tests write them (SPEC §12): the `shout` and `grow` subgraphs, and documents
that map and loop them."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.support.documents import workflow

__all__ = [
    "GROW",
    "SHOUT",
    "SHOUT_DOCUMENT",
    "SHOUT_IDS",
    "body",
    "edges",
    "looped",
    "mapped",
    "mapped_nodes",
    "nested",
    "shout",
    "shout_each",
    "terse",
]


def edges(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": source, "to": target} for source, target in pairs]


def body(nodes: list[dict[str, Any]], *pairs: tuple[str, str]) -> dict[str, Any]:
    return {"nodes": nodes, "edges": edges(*pairs)}


def shout(seconds: float = 0.02) -> dict[str, Any]:
    """A word, shouted after a wait of ``seconds``: `word` is what a map maps over, `suffix` is
    given to every item."""
    return body(
        [
            {"id": "word", "type": "input",
             "params": {"name": "word", "schema": {"type": "string"}}},
            {"id": "suffix", "type": "input", "params": {"name": "suffix", "default": "!"}},
            {"id": "wait", "type": "sleep", "params": {"seconds": seconds}},
            {"id": "up", "type": "template",
             "params": {"template": "{{ w.upper() }}{{ suffix }}"}},
            {"id": "out", "type": "output", "params": {"name": "loud"}},
        ],
        ("word.value", "wait.x"),
        ("wait.y", "up.w"),
        ("suffix.value", "up.suffix"),
        ("up.text", "out.value"),
    )  # fmt: skip


SHOUT = shout()

# One more letter each time: `text` is carried from one iteration to the next.
GROW = body(
    [
        {"id": "text", "type": "input", "params": {"name": "text"}},
        {"id": "more", "type": "sleep", "params": {"seconds": 0}},
        {"id": "add", "type": "template", "params": {"template": "{{ t }}a"}},
        {"id": "out", "type": "output", "params": {"name": "text"}},
        {"id": "n", "type": "template", "params": {"template": "{{ t | length }}"}},
        {"id": "size", "type": "output", "params": {"name": "size"}},
    ],
    ("text.value", "more.x"),
    ("more.y", "add.t"),
    ("add.text", "out.value"),
    ("add.text", "n.t"),
    ("n.text", "size.value"),
)


def mapped(subgraph: dict[str, Any] | None = None, **params: Any) -> Any:
    """Words mapped over the `shout` subgraph (``subgraph``: another in its place)."""
    nodes = [
        {"id": "words", "type": "input", "params": {"name": "words", "schema": {"type": "array"}}},
        {"id": "m", "type": "map", "params": {"graph": "shout", **params}},
        {"id": "loud", "type": "output", "params": {"name": "loud"}},
        {"id": "errors", "type": "output", "params": {"name": "errors"}},
    ]
    wiring = [("words.value", "m.items"), ("m.loud", "loud.value"), ("m.errors", "errors.value")]
    return workflow(nodes, wiring, subgraphs={"shout": subgraph or SHOUT})


def looped(**params: Any) -> Any:
    nodes = [
        {"id": "start", "type": "input", "params": {"name": "start", "default": "b"}},
        {"id": "lp", "type": "loop", "params": {"graph": "grow", **params}},
        {"id": "text", "type": "output", "params": {"name": "text"}},
        {"id": "times", "type": "output", "params": {"name": "times"}},
    ]
    wiring = [
        ("start.value", "lp.text"),
        ("lp.text", "text.value"),
        ("lp.iterations", "times.value"),
    ]
    return workflow(nodes, wiring, subgraphs={"grow": GROW})


def nested() -> Any:
    """Words mapped over a body that runs `shout` as a subgraph (``m[1]/s/up``)."""
    outer = body(
        [
            {"id": "word", "type": "input", "params": {"name": "word"}},
            {"id": "s", "type": "subgraph", "params": {"graph": "shout"}},
            {"id": "out", "type": "output", "params": {"name": "loud"}},
        ],
        ("word.value", "s.word"),
        ("s.loud", "out.value"),
    )
    nodes = [
        {"id": "words", "type": "input", "params": {"name": "words", "schema": {"type": "array"}}},
        {"id": "m", "type": "map", "params": {"graph": "outer"}},
        {"id": "loud", "type": "output", "params": {"name": "loud"}},
    ]
    return workflow(
        nodes,
        [("words.value", "m.items"), ("m.loud", "loud.value")],
        subgraphs={"outer": outer, "shout": SHOUT},
    )


SHOUT_IDS = [node["id"] for node in SHOUT["nodes"]]
SHOUT_DOCUMENT = {"schema_version": 1, "name": "Shout", **SHOUT}


def mapped_nodes(**params: Any) -> list[dict[str, Any]]:
    """The nodes of `mapped`, as plain data."""
    return [msgspec.to_builtins(node) for node in mapped(**params).nodes]


def terse(document: dict[str, Any]) -> dict[str, Any]:
    """A document as `workflow` takes it: edges as pairs."""
    edges = [(edge["from"], edge["to"]) for edge in document.get("edges", [])]
    rest = {key: value for key, value in document.items() if key not in ("nodes", "edges")}
    rest.pop("schema_version", None)
    return {"nodes": document["nodes"], "edges": edges, **rest}


def shout_each(words: list[Any], **map_params: Any) -> dict[str, Any]:
    """A stored document for the browser tests: the input ``words`` (those by default), a map
    of a body that shouts a word (upper case, no suffix), and the output ``loud``."""
    shout = {
        "nodes": [
            {"id": "word", "type": "input", "params": {"name": "word"}, "ui": {"x": 0, "y": 0}},
            {"id": "up", "type": "template", "params": {"template": "{{ word.upper() }}"},
             "ui": {"x": 250, "y": 0}},
            {"id": "out", "type": "output", "params": {"name": "loud"}, "ui": {"x": 500, "y": 0}},
        ],
        "edges": [{"from": "word.value", "to": "up.word"}, {"from": "up.text", "to": "out.value"}],
    }
    return {
        "schema_version": 1, "name": "Shout each", "subgraphs": {"shout": shout},
        "nodes": [
            {"id": "words", "type": "input",
             "params": {"name": "words", "schema": {"type": "array"}, "default": words}},
            {"id": "m", "type": "map", "params": {"graph": "shout", **map_params},
             "ui": {"x": 300, "y": 40}},
            {"id": "loud", "type": "output", "params": {"name": "loud"}, "ui": {"x": 600, "y": 40}},
        ],
        "edges": [{"from": "words.value", "to": "m.items"}, {"from": "m.loud", "to": "loud.value"}],
    }
