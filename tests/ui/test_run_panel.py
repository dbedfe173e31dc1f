"""The run panel's reading of a run's events for the canvas, with the canvas and the editor
faked: the items of a body node counted as they end, and the nodes of an opened body shown by
their own ids."""

from __future__ import annotations

from typing import Any

from ui.run_panel import RunPanel


class Canvas:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def set_states(self, states: dict[str, dict[str, Any]]) -> None:
        for node, state in states.items():
            self.states.setdefault(node, {}).update(state)

    def append_text(self, node: str, text: str) -> None:
        self.states.setdefault(node, {})["text"] = self.states.get(node, {}).get("text", "") + text


class Needs:
    def __init__(self, shown: str = "") -> None:
        self._shown = shown

    def shown(self) -> str:
        return self._shown

    def body_size(self, node_id: str) -> int:
        return 3 if node_id == "m" else 0


def events(item: int) -> list[dict[str, Any]]:
    """An item's three nodes of the map `m`, each started, then completed."""
    found = []
    for node in ("word", "up", "out"):
        path = f"m[{item}]/{node}"
        found += [
            {"type": "node.started", "node": path, "data": {"attempt": 1}},
            {"type": "node.completed", "node": path, "data": {"status": "succeeded"}},
        ]
    return found


def panel(shown: str = "") -> tuple[RunPanel, Canvas]:
    canvas = Canvas()
    return RunPanel(None, canvas, Needs(shown)), canvas  # type: ignore[arg-type]


def test_a_map_counts_its_items_as_their_nodes_settle() -> None:
    run_panel, canvas = panel()
    for event in events(0)[:-1]:  # the item's last node not settled yet
        run_panel._apply_event(event)
    assert "progress" not in canvas.states.get("m", {})
    run_panel._apply_event(events(0)[-1])
    assert canvas.states["m"]["progress"] == "1 done"
    for event in events(1):
        run_panel._apply_event(event)
    assert canvas.states["m"]["progress"] == "2 done"
    assert "m[0]/up" not in canvas.states  # nothing is drawn under a path


def test_an_opened_item_shows_its_nodes_by_their_own_ids() -> None:
    run_panel, canvas = panel(shown="m[1]/")
    for event in [*events(0), *events(1)]:
        run_panel._apply_event(event)
    assert canvas.states["up"]["status"] == "succeeded"
    assert set(canvas.states) == {"word", "up", "out"}  # item 1's, not the map's progress
