"""How the run tree labels a run: a rerun says where it started from, a replay says so."""

from __future__ import annotations

from ui.history import _label


def test_a_replay_is_labelled_a_replay() -> None:
    base = {"id": "run_0123456789abcdef", "status": "succeeded",
            "created_at": "2026-12-04T20:00:00+00:00"}  # fmt: skip
    assert _label({**base, "replay_of": "run_x"}, {}) == "succeeded 20:00:00 replay (abcdef)"
    assert _label({**base, "from_node": "llm"}, {}) == "succeeded 20:00:00 from llm (abcdef)"
    assert _label(base, {base["id"]: "mcp"}) == "succeeded 20:00:00 · mcp (abcdef)"
