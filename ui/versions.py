"""The versions panel: a workflow's saved versions (who, when); open one read-only on the canvas,
diff two there (added, removed and changed nodes and edges marked, changed params listed), or
restore one as a new version. Everything goes through the public API."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from ui.client import Api, ApiError


def _label(edge: dict[str, str]) -> str:
    return f"{edge['from']}->{edge['to']}"


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def document_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed from ``old`` to ``new``: ``{"nodes": {id: "added" | "removed" |
    "changed"}, "edges": {label: "added" | "removed"}, "params": {id: [line, …]}}``."""
    before = {node["id"]: node for node in old.get("nodes") or []}
    after = {node["id"]: node for node in new.get("nodes") or []}
    nodes: dict[str, str] = {}
    params: dict[str, list[str]] = {}
    for node_id, node in after.items():
        if node_id not in before:
            nodes[node_id] = "added"
            continue
        was = before[node_id]
        lines = []
        if was["type"] != node["type"]:
            lines.append(f"type: {was['type']} → {node['type']}")
        old_params, new_params = was.get("params") or {}, node.get("params") or {}
        for name in sorted(old_params.keys() | new_params.keys()):
            if old_params.get(name) != new_params.get(name):
                old_text = _shown(old_params[name]) if name in old_params else "(unset)"
                new_text = _shown(new_params[name]) if name in new_params else "(unset)"
                lines.append(f"{name}: {old_text} → {new_text}")
        if lines:
            nodes[node_id], params[node_id] = "changed", lines
    nodes.update(dict.fromkeys(before.keys() - after.keys(), "removed"))
    old_edges = {_label(edge) for edge in old.get("edges") or []}
    new_edges = {_label(edge) for edge in new.get("edges") or []}
    edges = dict.fromkeys(new_edges - old_edges, "added")
    edges.update(dict.fromkeys(old_edges - new_edges, "removed"))
    return {"nodes": nodes, "edges": edges, "params": params}


def diff_graph(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s nodes and edges with ``old``'s removed ones added back, to draw them marked."""
    kept = {node["id"] for node in new.get("nodes") or []}
    edges = {_label(edge) for edge in new.get("edges") or []}
    return {
        "schema_version": 1,
        "name": new.get("name", ""),
        "nodes": [*(new.get("nodes") or []),
                  *(n for n in old.get("nodes") or [] if n["id"] not in kept)],
        "edges": [*(new.get("edges") or []),
                  *(e for e in old.get("edges") or [] if _label(e) not in edges)],
    }


@dataclass
class VersionsNeeds:
    """What the panel needs from the editor."""

    workflow_id: str
    current: Callable[[], int]  # the version being edited
    dirty: Callable[[], bool]
    # Draw a document read-only with a banner (and diff marks); None: back to editing.
    show: Callable[[dict[str, Any] | None, str, dict[str, Any] | None], Awaitable[None]]
    restored: Callable[[dict[str, Any]], Awaitable[None]]  # the saved workflow restored


class Versions:
    def __init__(self, api: Api, needs: VersionsNeeds) -> None:
        self.api = api
        self.needs = needs
        self.ticked: list[int] = []
        self.box = ui.column().classes("w-full gap-1")

    async def refresh(self) -> None:
        try:
            page = await self.api.get(f"/api/workflows/{self.needs.workflow_id}/versions",
                                      limit=100)
        except ApiError as exc:
            self.box.clear()
            with self.box:
                ui.label(f"Versions unavailable: {exc.detail}")
            return
        self.ticked = [v for v in self.ticked if any(i["version"] == v for i in page["items"])]
        self.box.clear()
        with self.box:
            with ui.row().classes("items-center gap-2"):
                ui.button("Refresh", on_click=self.refresh).props("flat dense")
                ui.button("Diff ticked", on_click=self.diff_ticked).props(
                    "flat dense data-diff-versions")
                ui.button("Back to editing", on_click=self.back).props("flat dense")
            self.details = ui.column().classes("w-full gap-0 text-sm")
            for item in page["items"]:
                self._row(item)

    def _row(self, item: dict[str, Any]) -> None:
        version = item["version"]
        who = item.get("saved_by") or "local"
        current = version == self.needs.current()
        with ui.row().classes("items-center w-full gap-1 border-b").props(
            f'data-version="{version}"'
        ):
            ui.checkbox(value=version in self.ticked,
                        on_change=lambda e, v=version: self._tick(v, bool(e.value))).props(
                f"dense data-tick-version={version}")
            ui.label(f"v{version}" + (" (current)" if current else "")).classes("font-bold")
            ui.label(f"{item['created_at'][:19].replace('T', ' ')} · {who}").classes(
                "text-xs text-gray-500")
            ui.space()
            ui.button("Open", on_click=lambda v=version: self.open(v)).props(
                f"flat dense data-open-version={version}")
            if not current:
                ui.button("Restore", on_click=lambda v=version: self.restore(v)).props(
                    f"flat dense data-restore-version={version}")

    def _tick(self, version: int, ticked: bool) -> None:
        self.ticked = [v for v in self.ticked if v != version] + ([version] if ticked else [])

    async def _document(self, version: int) -> dict[str, Any]:
        record = await self.api.get(f"/api/workflows/{self.needs.workflow_id}/versions/{version}")
        return dict(record["document"])

    async def open(self, version: int) -> None:
        document = await self._document(version)
        await self.needs.show(document, f"Version {version}, read-only", None)

    async def back(self) -> None:
        self.details.clear()
        await self.needs.show(None, "", None)

    async def diff_ticked(self) -> None:
        if len(self.ticked) != 2:
            ui.notify("Tick two versions to diff them", type="warning")
            return
        older, newer = sorted(self.ticked)
        old, new = await self._document(older), await self._document(newer)
        changes = document_diff(old, new)
        marks = {"nodes": changes["nodes"], "edges": changes["edges"]}
        await self.needs.show(diff_graph(old, new), f"Changes from v{older} to v{newer}", marks)
        self.details.clear()
        with self.details:
            ui.label(f"v{older} → v{newer}").classes("font-bold")
            if not changes["nodes"] and not changes["edges"]:
                ui.label("No change to the graph.")
            for node_id, kind in sorted(changes["nodes"].items()):
                ui.label(f"{node_id}: {kind}").props(f'data-diff-node="{node_id}"')
                for line in changes["params"].get(node_id, []):
                    ui.label(f"  {line}").classes("text-xs font-mono pl-3").props(
                        f'data-diff-param="{node_id}"')
            for label, kind in sorted(changes["edges"].items()):
                ui.label(f"{label}: {kind}").classes("text-xs")

    async def restore(self, version: int) -> None:
        if self.needs.dirty():
            ui.notify("Save or undo your changes before restoring a version", type="warning")
            return
        document = await self._document(version)
        try:
            response = await self.api.call(
                "PUT", f"/api/workflows/{self.needs.workflow_id}", body=document,
                headers={"If-Match": f'"{self.needs.current()}"'},
            )
        except ApiError as exc:
            ui.notify(f"Not restored: {exc.detail}", type="negative")
            return
        saved = response.json()
        ui.notify(f"Version {version} restored as version {saved['version']}", type="positive")
        await self.needs.restored(saved)
        await self.refresh()
