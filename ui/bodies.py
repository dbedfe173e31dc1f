"""The bodies opened in the editor (SPEC §12): which graph of the document the canvas draws
(the workflow's own, or the subgraph a `subgraph`, `map` or `loop` node runs, nested), the
breadcrumb back out, and which item or iteration of them the canvas shows the states of."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from ui.canvas import Canvas
from ui.client import Api

__all__ = ["OpenedBodies"]


class OpenedBodies:
    """Opened bodies, outermost first: (the body node's id, the subgraph it runs). ``redraw``
    draws the graph now edited; ``run_id`` is the run last followed in the editor. It draws
    on ``canvas`` and into ``crumbs``, set once the editor's page is built."""

    def __init__(
        self,
        api: Api,
        workflow_id: str,
        *,
        document: Callable[[], dict[str, Any]],
        redraw: Callable[[], Awaitable[None]],
        run_id: Callable[[], str | None],
    ) -> None:
        self.api = api
        self.workflow_id = workflow_id
        self.document = document
        self.redraw = redraw
        self.run_id = run_id
        self.opened: list[tuple[str, str]] = []
        # The item (map) or iteration (loop) of each body the canvas shows, by depth (the
        # first when none was picked).
        self.picked: dict[int, int] = {}
        # Where it draws, given once the editor's page is built.
        self.canvas: Canvas | None = None
        self.crumbs: ui.row | None = None

    def graph(self) -> dict[str, Any]:
        """The graph being edited: the document's own, or the body opened (a subgraph of it,
        changed in place: saving saves the document)."""
        document = self.document()
        if self.opened:
            body = (document.get("subgraphs") or {}).get(self.opened[-1][1])
            if isinstance(body, dict):
                body.setdefault("nodes", [])
                body.setdefault("edges", [])
                return body
            self.opened = []  # gone (an undo, say): back to the workflow
        return document

    async def open(self, node_id: str) -> None:
        """Open the body the node ``node_id`` of the graph edited runs, if it is one of the
        document's own."""
        node = next((n for n in self.graph()["nodes"] if n["id"] == node_id), None)
        graph = (node or {}).get("params", {}).get("graph")
        if node is None or graph not in (self.document().get("subgraphs") or {}):
            return
        self.opened.append((node_id, graph))
        await self.redraw()
        await self.show_instance()

    async def close_to(self, depth: int) -> None:
        """Go back out to ``depth`` bodies deep (0: the workflow's own graph)."""
        del self.opened[depth:]
        for deeper in [d for d in self.picked if d >= depth]:
            del self.picked[deeper]
        await self.redraw()
        if self.opened:
            await self.show_instance()

    def show_crumbs(self) -> None:
        """The way back out, and a picker for each `map` and `loop` opened."""
        if self.crumbs is None:
            return
        self.crumbs.clear()
        if not self.opened:
            return
        with self.crumbs:
            ui.button("Workflow", on_click=lambda: self.close_to(0)).props(
                'flat dense no-caps data-crumb="0"'
            )
            for depth, (node_id, graph) in enumerate(self.opened, start=1):
                ui.label("/")
                label = f"{node_id} ({graph})"
                if depth == len(self.opened):
                    ui.label(label).classes("font-bold").props(f'data-crumb="{depth}"')
                else:
                    ui.button(label, on_click=lambda d=depth: self.close_to(d)).props(
                        f'flat dense no-caps data-crumb="{depth}"'
                    )
                kind = self._kind(depth - 1)
                if kind in ("map", "loop"):
                    first = 0 if kind == "map" else 1
                    ui.number(
                        "item" if kind == "map" else "iteration",
                        value=self.picked.get(depth - 1, first),
                        min=first,
                        precision=0,
                        on_change=lambda e, d=depth - 1: self._pick(d, e.value),
                    ).props(f'dense data-picker="{depth}"').classes("w-24")

    def _kind(self, depth: int) -> str:
        """The type of the body node opened at ``depth``, looked up in its own graph."""
        document = self.document()
        graph = document
        for level, (node_id, name) in enumerate(self.opened):
            node = next((n for n in graph["nodes"] if n["id"] == node_id), None)
            if node is None:
                return ""
            if level == depth:
                return str(node["type"])
            graph = (document.get("subgraphs") or {}).get(name) or {"nodes": []}
        return ""

    def shown_prefix(self) -> str:
        """The path of the nodes drawn: "" for the workflow's own, ``m[2]/`` for item 2 (the
        one picked) of the map `m` opened, and so on, nested."""
        prefix = ""
        for depth, (node_id, _) in enumerate(self.opened):
            kind = self._kind(depth)
            index = self.picked.get(depth, 0 if kind == "map" else 1)
            if kind == "map":
                prefix += f"{node_id}[{index}]/"
            elif kind == "loop":
                prefix += f"{node_id}#{index}/"
            else:
                prefix += f"{node_id}/"
        return prefix

    async def _pick(self, depth: int, value: Any) -> None:
        if value is None:
            return
        self.picked[depth] = int(value)
        await self.show_instance()

    async def show_instance(self) -> None:
        """The states and values of the picked item or iteration of the bodies opened, in the
        last run followed here (or the workflow's newest)."""
        run_id = self.run_id()
        if self.canvas is None:
            return
        if run_id is None:
            page = await self.api.get("/api/runs", workflow_id=self.workflow_id, limit=1)
            if not page.get("items"):
                return
            run_id = page["items"][0]["id"]
        run = await self.api.get(f"/api/runs/{run_id}")
        prefix = self.shown_prefix()
        states = {}
        for node in self.graph()["nodes"]:
            found = run["nodes"].get(prefix + node["id"])
            if found is None:
                states[node["id"]] = {"status": "idle", "reason": "", "text": "", "error": ""}
                continue
            output = found.get("output")
            states[node["id"]] = {
                "status": found["status"],
                "reason": found.get("reason") or "",
                "error": found.get("error") or "",
                "text": json.dumps(output)[:200] if output is not None else "",
            }
        self.canvas.set_states(states)

    def body_size(self, node_id: str) -> int:
        """How many nodes the body the workflow's node ``node_id`` runs has (0: none)."""
        document = self.document()
        found = [node for node in document["nodes"] if node["id"] == node_id]
        graph = found[0].get("params", {}).get("graph") if found else None
        body = (document.get("subgraphs") or {}).get(graph) if graph else None
        return len(body.get("nodes", [])) if body else 0
