"""The canvas element: Vue Flow (vendored under ui/vendor/) behind one NiceGUI element.

Props carry the graph (as JSON text: NiceGUI would wrap each dict and list of a prop in an
observable, ~0.17 s for 2,000 nodes) and the selection to restore for the first render only;
afterwards Python changes the drawing with `run_method` calls, so a large graph is never sent
twice. What the user does arrives as events
(`connect`, `refused`, `remove-nodes`, `remove-edges`, `move`, `selection`, `palette-drop`,
`viewport`, `open`, `param-edit`, `quick-add`, `note-add`, `note-edit`). Sticky notes are drawn
as nodes whose ids start with `NOTE_PREFIX`."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nicegui import ui

VENDOR = "vendor"
NOTE_PREFIX = "#note:"  # a drawn sticky note's id: `#` is in no node id


class Canvas(
    ui.element,
    component="canvas.js",
    esm={
        "@vue-flow/core": f"{VENDOR}/core",
        "@vue-flow/minimap": f"{VENDOR}/minimap",
        "@vue-flow/controls": f"{VENDOR}/controls",
        "@vue-flow/background": f"{VENDOR}/background",
    },
):
    def __init__(
        self,
        graph: dict[str, Any],
        viewport: dict[str, Any] | None = None,
        selection: list[str] | None = None,
        catalogue: list[dict[str, Any]] | None = None,
        read_only: str = "",
    ) -> None:
        """``catalogue``: the node types quick add offers; ``read_only``: a banner saying why
        the graph cannot be changed (empty: it can)."""
        super().__init__()
        self._props["flowId"] = f"flow-{uuid.uuid4().hex[:8]}"
        self._props["graph"] = json.dumps(graph, separators=(",", ":"))
        self._props["viewport"] = viewport
        self._props["selection"] = list(selection or [])
        self._props["catalogue"] = catalogue or []
        self._props["readOnly"] = read_only
        self.classes("nl-canvas-host")

    def load(self, graph: dict[str, Any]) -> None:
        self.run_method("load", graph)

    def fit(self) -> None:
        self.run_method("fit")

    def set_viewport(self, viewport: dict[str, Any]) -> None:
        self.run_method("setViewport", viewport)

    def add_node(self, node: dict[str, Any]) -> None:
        self.run_method("addNode", node)

    def update_node(self, node: dict[str, Any]) -> None:
        self.run_method("updateNode", node)

    def remove_nodes(self, ids: list[str]) -> None:
        self.run_method("removeNodes", ids)

    def add_edge(self, edge: dict[str, str]) -> None:
        self.run_method("addEdge", edge)

    def remove_edge(self, edge_id: str) -> None:
        self.run_method("removeEdge", edge_id)

    def move_nodes(self, positions: dict[str, dict[str, int]]) -> None:
        self.run_method("moveNodes", positions)

    def set_states(self, states: dict[str, dict[str, Any]]) -> None:
        self.run_method("setStates", states)

    def append_text(self, node_id: str, text: str) -> None:
        self.run_method("appendText", node_id, text)

    def clear_states(self) -> None:
        self.run_method("clearStates")

    def mark_invalid(self, marks: dict[str, dict[str, Any]]) -> None:
        """``{node: {"ports": {port: message}, "message": text}}``; nodes left out are valid."""
        self.run_method("markInvalid", marks)

    def select(self, node_ids: list[str]) -> None:
        self.run_method("select", node_ids)

    def add_note(self, note: dict[str, Any]) -> None:
        self.run_method("addNote", note)

    def update_note(self, note: dict[str, Any]) -> None:
        self.run_method("updateNote", note)

    def set_diff(self, marks: dict[str, dict[str, str]] | None) -> None:
        """``{"nodes": {id: "added" | "removed" | "changed"}, "edges": {label: …}}``; None:
        no marks."""
        self.run_method("setDiff", marks)

    def set_read_only(self, text: str) -> None:
        """Show ``text`` as a banner and refuse changes; an empty text: editable again."""
        self.run_method("setReadOnly", text)
