"""The editor's run controls: ask for the inputs, start a run, show its events on the canvas as
they happen (states, streamed tokens, outputs), cancel it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from ui.canvas import Canvas
from ui.client import Api, ApiError
from ui.forms import inputs_form
from ui.inbox import answer_form
from ui.node_face import preview_of


@dataclass(frozen=True)
class RunPanelNeeds:
    """What the run panel reads, draws into and calls, besides the API and the canvas."""

    workflow_id: str
    document: Callable[[], dict[str, Any]]  # the document as edited now
    dirty: Callable[[], bool]  # unsaved changes?
    save: Callable[[], Awaitable[bool]]  # False when the save was refused
    show_errors: Callable[[list[dict[str, Any]], str], None]
    issues: Callable[[], list[dict[str, Any]]]  # the saved document's: a run of it is refused
    cancel_button: ui.button  # shown while a run is followed
    box: ui.column  # the run tab: the run's link, status and outputs
    panels: ui.tab_panels  # switched to the run tab when a run is followed
    on_finished: Callable[[], Awaitable[None]]  # once a run's events ended
    body_size: Callable[[str], int]  # how many nodes the body a node runs has (0: none)
    # The path of the nodes the canvas shows: "" for the workflow's own, "m[2]/" for item 2
    # of the map `m` opened.
    shown: Callable[[], str]


class RunPanel:
    def __init__(self, api: Api, canvas: Canvas, needs: RunPanelNeeds) -> None:
        self.api = api
        self.canvas = canvas
        self.needs = needs
        self.run_id: str | None = None
        # Bodies while a run is followed: the nodes of an instance (`m[3]`) settled so far, and
        # the instances of each body node that have ended.
        self._settled: dict[str, int] = {}
        self._ended: dict[str, int] = {}

    async def ask_inputs(self) -> None:
        if self.needs.dirty() and not await self.needs.save():
            return
        if self.needs.issues():  # no inputs to ask for: the server refuses it, saying why
            await self.start({})
            return
        specs = [
            {"name": n["params"]["name"], "schema": n["params"].get("schema"),
             "default": n["params"].get("default")}
            for n in self.needs.document()["nodes"] if n["type"] == "input"
        ]
        if not specs:
            await self.start({})
            return
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label("Run inputs").classes("font-bold")
            getters = inputs_form(specs)

            async def go() -> None:
                try:
                    values = {name: get() for name, get in getters.items()}
                except (ValueError, json.JSONDecodeError) as exc:
                    ui.notify(f"Not a valid value: {exc}", type="warning")
                    return
                # Closed once the run started; refused, it stays open with what was typed.
                await self.start({k: v for k, v in values.items() if v is not None}, dialog)

            with ui.row():
                ui.button("Start", on_click=go).props("color=positive")
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    async def start(self, inputs: dict[str, Any], dialog: ui.dialog | None = None) -> bool:
        """Start a run and follow it; False (and a notice) when the server refused it."""
        try:
            path = f"/api/workflows/{self.needs.workflow_id}/runs"
            run = await self.api.post(path, {"inputs": inputs})
        except ApiError as exc:
            if exc.status == 0:
                ui.notify(f"Not started: {exc.detail}", type="warning", classes="nl-offline")
            elif exc.status == 422 and exc.errors:
                self.needs.show_errors(
                    exc.errors, f"Not run: the workflow has {len(exc.errors)} issue(s)")
            else:
                self.needs.show_errors(exc.errors, exc.detail)
            return False
        if dialog is not None:
            dialog.close()
        await self.follow(run["id"])
        return True

    async def follow(self, run_id: str) -> None:
        """Show a run's events on the canvas as they happen."""
        self.run_id = run_id
        self._settled.clear()
        self._ended.clear()
        self.canvas.clear_states()
        self.needs.cancel_button.set_visibility(True)
        self.needs.box.clear()
        with self.needs.box:
            ui.link(f"Run {run_id}", f"/runs/{run_id}").classes("font-bold")
            status = ui.label("running").props("data-run-status=running")
            outputs = ui.column().classes("w-full")
        self.needs.panels.set_value("run")
        try:
            async for event in self.api.events(run_id):
                self._apply_event(event)
                if event["type"] == "run.finished":
                    data = event["data"]
                    error = f": {data['error']}" if data.get("error") else ""
                    status.set_text(data["status"] + error)
                    status.props(f"data-run-status={data['status']}")
                    with outputs:
                        for name, value in data.get("outputs", {}).items():
                            ui.label(name).classes("font-bold")
                            shown = value if isinstance(value, str) else json.dumps(value, indent=2)
                            ui.code(shown, language="text").classes("w-full").props(
                                f'data-output="{name}"'
                            )
                    await self._final_states(run_id)
                    if data["status"] == "waiting":
                        await self._questions(run_id)
        except ApiError as exc:
            ui.notify(f"Lost the run's events: {exc.detail}", type="warning")
        finally:
            self.needs.cancel_button.set_visibility(False)
            await self.needs.on_finished()

    async def _questions(self, run_id: str) -> None:
        """The forms of the nodes the run waits on (their nodes show `waiting`); an answer
        follows the run again from there."""

        async def answered(_run: dict[str, Any]) -> None:
            await self.follow(run_id)

        with self.needs.box:
            for item in (await self.api.get("/api/inbox"))["items"]:
                if item["run_id"] == run_id:
                    ui.label(f"{item['node']} waits for your answer").classes("font-bold mt-2")
                    answer_form(self.api, item, answered)

    async def _final_states(self, run_id: str) -> None:
        """Nodes a cancel or a failure stopped get no event of their own: the run record says;
        and how many instances of each body ran."""
        run = await self.api.get(f"/api/runs/{run_id}")
        self.canvas.set_states({
            node_id: {"status": state["status"], "error": state.get("error") or ""}
            for node_id, state in run["nodes"].items()
            if state["status"] in ("cancelled", "failed", "skipped", "pending")
        })
        self.canvas.set_states({
            node_id: {"preview": preview_of(state.get("output"))}
            for node_id, state in run["nodes"].items()
            if state["status"] in ("succeeded", "cached") and "/" not in node_id
        })
        self.canvas.set_states({
            node_id: {"progress": progress_text(state["progress"])}
            for node_id, state in run["nodes"].items()
            if state.get("progress") and "/" not in node_id
        })

    def _inner_settled(self, path: str) -> None:
        """A node inside a body settled: its body node shows how many instances have ended
        (an instance has ended when as many of its nodes have settled as its body has)."""
        instance = path.rpartition("/")[0]
        if "/" in instance:
            return  # deeper bodies: their top-level node counts its own instances only
        body_node = instance.partition("[")[0].partition("#")[0]
        size = self.needs.body_size(body_node)
        self._settled[instance] = self._settled.get(instance, 0) + 1
        if size and self._settled[instance] == size:
            self._ended[body_node] = self._ended.get(body_node, 0) + 1
            self.canvas.set_states({body_node: {"progress": f"{self._ended[body_node]} done"}})

    def _apply_event(self, event: dict[str, Any]) -> None:
        kind, path, data = event["type"], event.get("node"), event.get("data") or {}
        canvas = self.canvas
        shown = self.needs.shown()
        node = _on_canvas(path, shown)
        if kind == "run.started":
            reused = data.get("reused") or {}
            canvas.set_states({
                found: {"status": "cached", "reason": f"reused from run {origin}"}
                for origin, nodes in reused.items()
                for node_id in nodes
                if (found := _on_canvas(node_id, shown)) is not None
            })
        elif kind == "node.started" and node:
            canvas.set_states({node: {"status": "running", "text": "", "error": ""}})
        elif kind == "node.token" and node:
            canvas.append_text(node, data.get("text", ""))
        elif kind == "node.completed" and node:
            state = {"status": data.get("status", "succeeded"), "reason": data.get("reason", "")}
            canvas.set_states({node: state})
        elif kind == "node.failed" and node and not data.get("will_retry"):
            canvas.set_states({node: {"status": "failed", "error": data.get("error", "")}})
        elif kind == "node.skipped" and node:
            canvas.set_states({node: {"status": "skipped", "reason": data.get("reason", "")}})
        elif kind == "node.waiting" and node:
            question = data.get("question") or {}
            canvas.set_states({node: {"status": "waiting", "text": question.get("prompt", "")}})
        final = kind in ("node.completed", "node.skipped") or (
            kind == "node.failed" and not data.get("will_retry")
        )
        if final and path and "/" in path and not shown:
            self._inner_settled(path)

    async def cancel(self) -> None:
        if self.run_id:
            try:
                await self.api.post(f"/api/runs/{self.run_id}/cancel")
            except ApiError as exc:
                ui.notify(exc.detail, type="warning")


def progress_text(progress: dict[str, int]) -> str:
    """A body node's progress as it shows: ``7/10``, and the failed ones."""
    failed = f", {progress['failed']} failed" if progress.get("failed") else ""
    return f"{progress['done']}/{progress['total']}{failed}"


def _on_canvas(path: str | None, shown: str) -> str | None:
    """The id on the canvas of the node at ``path``, when the canvas shows it (the nodes under
    ``shown``, the path of the graph drawn)."""
    if path is None or not path.startswith(shown):
        return None
    local = path[len(shown) :]
    return None if "/" in local else local
