"""The workflow editor page: palette, canvas, params form, Save / Validate / Run, live states."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Literal

from nicegui import background_tasks, ui

from ui.bodies import OpenedBodies
from ui.canvas import NOTE_PREFIX, Canvas
from ui.client import Api, ApiError
from ui.clipboard import copied, pasted
from ui.forms import MISSING, params_form
from ui.grouping import GroupRefused, group_into_subgraph
from ui.history import History, HistoryNeeds
from ui.layout import layered_positions
from ui.node_face import face
from ui.notes import Notes
from ui.palette import compatible, new_node_id, palette, port_view, starting_params
from ui.problems import NodeProblems, canvas_marks, locate
from ui.run_panel import RunPanel, RunPanelNeeds
from ui.versions import Versions, VersionsNeeds
from ui.view_state import PANELS, ViewState

UNDO_DEPTH = 100


class Editor:
    """One open workflow. ``self.document`` is the truth; the canvas draws it."""

    def __init__(self, api: Api, workflow_id: str) -> None:
        self.api = api
        self.workflow_id = workflow_id
        self.document: dict[str, Any] = {}
        self.version = 0
        self.types: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, dict[str, Any]] = {}
        self._port_asks: dict[str, int] = {}  # how many times each node's ports were asked for
        self.models: list[str] = []
        self.selected: list[str] = []
        self.undo: list[dict[str, Any]] = []
        self.redo: list[dict[str, Any]] = []
        self.clipboard: dict[str, Any] | None = None
        self.dirty = False
        self.view = ViewState(api, workflow_id)
        self.problems: dict[str, NodeProblems] = {}
        self.notes = Notes(lambda: self.document)
        self.viewing = ""  # why the canvas shows something read-only (a version, a diff)
        self.issues: list[dict[str, Any]] = []  # the saved document's, as its last save answered
        self.bodies = OpenedBodies(
            api,
            workflow_id,
            document=lambda: self.document,
            redraw=self._show_graph,
            run_id=lambda: self.runs.run_id,
        )

    @property
    def graph(self) -> dict[str, Any]:
        """The graph being edited: the document's own, or the body opened (see
        `OpenedBodies`)."""
        return self.bodies.graph()

    # -- building the page ------------------------------------------------------------------

    async def build(self) -> None:
        # The page is sent once all of this is in: ask for it at once, not one after the other.
        record, catalogue, models, _ = await asyncio.gather(
            self.api.get(f"/api/workflows/{self.workflow_id}"), self.api.get("/api/node-types"),
            self.api.get("/api/models"), self.view.load(),
        )
        self.document, self.version = record["document"], record["version"]
        for key in ("nodes", "edges"):  # the API leaves out empty lists
            self.document.setdefault(key, [])
        self.types = {item["type"]: item for item in catalogue["items"]}
        self.models = [item["name"] for item in models["items"]]
        await self._refresh_ports([node["id"] for node in self.document["nodes"]])
        self.view.keep_nodes({node["id"] for node in self.document["nodes"]})
        self.selected = list(self.view.selection)
        with ui.row().classes("w-full items-center gap-2 px-2"):
            ui.link("Workflows", "/")
            self.title = ui.label(self.document.get("name", "")).classes("text-lg font-bold")
            crumbs = ui.row().classes("items-center gap-1 text-sm").props("data-breadcrumb")
            self.state_label = ui.label("").classes("text-sm text-gray-500")
            ui.space()
            ui.button("Group into subgraph", on_click=self.group).props("flat")
            ui.button("Auto-layout", on_click=self.auto_layout).props("flat")
            ui.button("Validate", on_click=self.validate).props("outline")
            ui.button("Save", on_click=self.save)
            self.run_button = ui.button("Run")  # Run and Cancel are wired in _run_panel
            self.run_button.props("color=positive")
            self.cancel_button = ui.button("Cancel")
            self.cancel_button.props("color=negative")
            self.cancel_button.set_visibility(False)
        with ui.splitter(value=14, limits=(8, 30)).classes("w-full nl-main") as outer:
            with outer.before:
                palette(self.types)
            split = ui.splitter(value=72, limits=(40, 90))
            with outer.after, split.classes("w-full h-full") as inner:
                with inner.before:
                    self.canvas = Canvas(
                        self._graph(), self.view.viewport(), self.selected,
                        catalogue=self._catalogue(),
                    )
                    self.bodies.canvas, self.bodies.crumbs = self.canvas, crumbs
                    for name in ("connect", "refused", "remove-nodes", "remove-edges", "move",
                                 "selection", "palette-drop", "viewport", "open", "param-edit",
                                 "quick-add", "note-add", "note-edit", "drawn"):
                        self.canvas.on(name, self._unless_viewing(
                            getattr(self, f"_on_{name.replace('-', '_')}"),
                            always=name in ("selection", "viewport", "refused")))
                with inner.after, ui.tabs().classes("w-full") as tabs:
                    for name in PANELS:
                        ui.tab(name, name.capitalize())
                with inner.after, ui.tab_panels(
                    tabs, value=self.view.panel,
                    on_change=lambda e: self.view.set_panel(str(e.value)),
                ).classes("w-full") as panels:
                    with ui.tab_panel("params"):
                        self.params_box = ui.column().classes("w-full")
                    with ui.tab_panel("run"):
                        self.runs = self._run_panel(ui.column().classes("w-full"), panels)
                    with ui.tab_panel("history"):
                        self.history = self._history()
                        await self.history.build()
                        self.history.node_selected(self.selected)
                    with ui.tab_panel("versions"):
                        self.versions = Versions(self.api, VersionsNeeds(
                            workflow_id=self.workflow_id, current=lambda: self.version,
                            dirty=lambda: self.dirty, show=self._show_other,
                            restored=self._restored,
                        ))
                        await self.versions.refresh()
        self._show_params()
        self._keys()

    async def _on_drawn(self, _event: Any) -> None:
        """The graph is drawn (and the server no longer busy sending it): now its issues."""
        await self._mark_saved_issues()

    async def _mark_saved_issues(self) -> None:
        """A draft opened again shows its issues on its nodes, without a notice."""
        try:
            answer = await self.api.post("/api/workflows/validate", self.document)
        except ApiError:
            return
        self.issues = list(answer["errors"])
        if self.issues:
            self.show_errors(self.issues, "")

    def _unless_viewing(self, handler: Any, *, always: bool) -> Any:
        """A canvas event's handler, which does nothing while a version is shown read-only."""
        async def handle(event: Any) -> None:
            if self.viewing and not always:
                return
            result = handler(event)
            if asyncio.iscoroutine(result):
                await result

        return handle

    async def _show_other(
        self, document: dict[str, Any] | None, banner: str, marks: dict[str, Any] | None
    ) -> None:
        """Draw another document read-only (a saved version, a diff), or (None) the one being
        edited again."""
        if document is None:
            self.viewing = ""
            self.canvas.set_read_only("")
            self.canvas.set_diff(None)
            await self._show_graph()
            return
        if self.bodies.opened:
            self.bodies.opened = []
            self.bodies.show_crumbs()
        self.viewing = banner
        try:
            answer = await self.api.post("/api/node-types/ports", {
                "nodes": {node["id"]: {"type": node["type"], "params": node.get("params", {})}
                          for node in document.get("nodes", [])
                          if self.types.get(node["type"], {}).get("dynamic_ports")},
                "subgraphs": document.get("subgraphs") or {},
            })
            ports = answer["nodes"]
        except ApiError:
            ports = {}
        mine = self.ports
        self.ports = ports
        try:
            graph = {"nodes": [self._node_view(node, document) for node in document["nodes"]],
                     "edges": list(document.get("edges") or []),
                     "notes": list((document.get("ui") or {}).get("notes") or [])}
        finally:
            self.ports = mine
        self.canvas.set_read_only(banner)
        self.canvas.load(graph)
        self.canvas.fit()
        self.selected = []
        self._show_params()
        if marks:
            self.canvas.set_diff(marks)

    async def _restored(self, saved: dict[str, Any]) -> None:
        self.document, self.version = saved["document"], saved["version"]
        for key in ("nodes", "edges"):
            self.document.setdefault(key, [])
        self.undo.clear()
        self.redo.clear()
        self.viewing = ""
        self.canvas.set_read_only("")
        self.canvas.set_diff(None)
        await self._show_graph()
        self.dirty = False
        self.issues = list(saved.get("issues") or [])
        self.state_label.set_text(f"restored as version {self.version}")
        self.show_errors(self.issues, "")

    def _run_panel(self, box: ui.column, panels: ui.tab_panels) -> RunPanel:
        """The run tab's panel, drawing into ``box``; the Run and Cancel buttons call it."""
        runs = RunPanel(self.api, self.canvas, RunPanelNeeds(
            workflow_id=self.workflow_id, document=lambda: self.document,
            dirty=lambda: self.dirty, save=self.save, show_errors=self.show_errors,
            issues=lambda: self.issues,
            cancel_button=self.cancel_button, box=box, panels=panels,
            on_finished=self._run_finished, body_size=self.bodies.body_size,
            shown=self.bodies.shown_prefix,
        ))
        self.run_button.on_click(runs.ask_inputs)
        self.cancel_button.on_click(runs.cancel)
        return runs

    async def _on_open(self, event: Any) -> None:
        """A double-click on a node that runs one of the document's bodies opens that body."""
        await self.bodies.open(str(event.args.get("id")))

    async def _show_graph(self) -> None:
        """Draw the graph now being edited, with its ports, and the way back out."""
        self.ports.clear()  # node ids repeat from one graph to another
        await self._refresh_ports([node["id"] for node in self.graph["nodes"]])
        self.canvas.load(self._graph())
        self.canvas.fit()
        self.selected = []
        self.view.set_selection(self.selected)
        self._show_params()
        self.bodies.show_crumbs()

    async def _run_finished(self) -> None:
        """A followed run ended: the history panel (made after the run panel) lists it."""
        await self.history.refresh()

    def _history(self) -> History:
        return History(self.api, self.canvas, HistoryNeeds(
            workflow_id=self.workflow_id, node=self.node, types=self.types, models=self.models,
            follow=self.runs.follow,
        ))

    def _keys(self) -> None:
        def handle(event: Any) -> None:
            if not event.action.keydown or not (event.modifiers.ctrl or event.modifiers.meta):
                return
            key = str(event.key).lower()
            if key == "z" and event.modifiers.shift:
                self.redo_change()
            elif key == "z":
                self.undo_change()
            elif key == "c":
                self.copy()
            elif key == "v":
                background_tasks.create(self.paste())

        ui.keyboard(on_key=handle, ignore=["input", "textarea", "select"])

    # -- the document as the canvas draws it -----------------------------------------------

    def _catalogue(self) -> list[dict[str, Any]]:
        """The node types as quick add lists them, with their fixed input ports."""
        return [
            {"type": kind, "title": info.get("title", kind), "category": info.get("category", ""),
             "description": info.get("description", ""),
             "dynamic_ports": bool(info.get("dynamic_ports")),
             "inputs": [port_view(port) for port in info.get("inputs", [])]}
            for kind, info in sorted(self.types.items(), key=lambda item: item[1].get("title", ""))
        ]

    def _node_view(
        self, node: dict[str, Any], graph: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        ports = self.ports.get(node["id"]) or self.types.get(node["type"], {})
        position = node.get("ui") or {}
        return {
            "id": node["id"],
            "title": self.types.get(node["type"], {}).get("title", node["type"]),
            "category": self.types.get(node["type"], {}).get("category", ""),
            **face(node, self.graph if graph is None else graph),
            "inputs": [port_view(port) for port in ports.get("inputs", [])],
            "outputs": [port_view(port) for port in ports.get("outputs", [])],
            "x": position.get("x", 0),
            "y": position.get("y", 0),
        }

    def _graph(self) -> dict[str, Any]:
        return {
            "nodes": [self._node_view(node) for node in self.graph["nodes"]],
            "edges": list(self.graph["edges"]),
            # Sticky notes belong to the workflow's own graph, not to its bodies.
            "notes": self.notes.all() if self.graph is self.document else [],
        }

    def node(self, node_id: str) -> dict[str, Any]:
        return next(node for node in self.graph["nodes"] if node["id"] == node_id)

    async def _refresh_ports(self, node_ids: list[str]) -> set[str]:
        """Ports that depend on params (a template's variables, say) come from the server; the
        nodes whose ports were updated. Asks overlap while the user types: an answer older than
        the node's latest ask is dropped, so a late answer cannot undo a newer one."""
        wanted = {
            node["id"]: {"type": node["type"], "params": copy.deepcopy(node.get("params", {}))}
            for node in self.graph["nodes"]
            if node["id"] in node_ids and self.types.get(node["type"], {}).get("dynamic_ports")
        }
        if not wanted:
            return set()
        asked = {node_id: self._port_asks.get(node_id, 0) + 1 for node_id in wanted}
        self._port_asks |= asked
        try:
            bodies = self.document.get("subgraphs") or {}
            answer = await self.api.post(
                "/api/node-types/ports", {"nodes": wanted, "subgraphs": bodies}
            )
        except ApiError:
            return set()  # bad params: the ports stay as they were until they are fixed
        fresh = {
            node_id: ports
            for node_id, ports in answer["nodes"].items()
            if self._port_asks.get(node_id) == asked.get(node_id)
        }
        self.ports.update(fresh)
        return set(fresh)

    def _changed(self) -> None:
        self.dirty = True
        self.state_label.set_text("unsaved changes")

    def _checkpoint(self) -> None:
        self.undo.append(copy.deepcopy(self.document))
        del self.undo[:-UNDO_DEPTH]
        self.redo.clear()

    # -- what the user does on the canvas --------------------------------------------------

    def _on_connect(self, event: Any) -> None:
        edge = {"from": event.args["from"], "to": event.args["to"]}
        if edge in self.graph["edges"]:
            return
        self._checkpoint()
        self.graph["edges"].append(edge)
        self.canvas.add_edge(edge)
        self._redraw_faces({edge["to"].partition(".")[0]})
        self._changed()

    def _redraw_faces(self, node_ids: set[str]) -> None:
        """Draw again the nodes whose face shows what feeds them (an LLM's prompt)."""
        for node in self.graph["nodes"]:
            if node["id"] in node_ids and node["type"] == "llm":
                self.canvas.update_node(self._node_view(node))

    def _on_refused(self, event: Any) -> None:
        ui.notify(f"Cannot connect: {event.args['reason']}", type="warning")

    def _on_remove_nodes(self, event: Any) -> None:
        """Nodes deleted, with their edges and any other edges deleted at the same time."""
        given = [str(i) for i in event.args["ids"]]
        notes = {i.removeprefix(NOTE_PREFIX) for i in given if i.startswith(NOTE_PREFIX)}
        ids = {i for i in given if not i.startswith(NOTE_PREFIX)}
        loose = set(event.args.get("edges") or [])
        self._checkpoint()
        if notes:
            self.notes.remove(notes)
            self.canvas.remove_nodes([NOTE_PREFIX + note for note in sorted(notes)])
        self.graph["nodes"] = [n for n in self.graph["nodes"] if n["id"] not in ids]
        self.graph["edges"] = [
            e for e in self.graph["edges"]
            if e["from"].split(".")[0] not in ids and e["to"].split(".")[0] not in ids
            and f"{e['from']}->{e['to']}" not in loose
        ]
        self.canvas.remove_nodes(sorted(ids))
        for edge_id in sorted(loose):
            self.canvas.remove_edge(edge_id)
        self.selected = [s for s in self.selected if s not in ids]
        self.view.set_selection(self.selected)
        self._show_params()
        self._changed()

    def _on_remove_edges(self, event: Any) -> None:
        ids = set(event.args["ids"])
        self._checkpoint()
        self.graph["edges"] = [
            e for e in self.graph["edges"] if f"{e['from']}->{e['to']}" not in ids
        ]
        for edge_id in ids:
            self.canvas.remove_edge(edge_id)
        self._changed()

    def _on_move(self, event: Any) -> None:
        self._checkpoint()
        for node_id, position in event.args["positions"].items():
            if node_id.startswith(NOTE_PREFIX):
                self.notes.move(node_id.removeprefix(NOTE_PREFIX), position)
                continue
            node = self.node(node_id)
            node["ui"] = {**(node.get("ui") or {}), "x": position["x"], "y": position["y"]}
        self._changed()

    def _on_selection(self, event: Any) -> None:
        self.selected = list(event.args["ids"])
        self.view.set_selection(self.selected)
        self._show_params()
        self.history.node_selected(self.selected)

    async def _on_palette_drop(self, event: Any) -> None:
        await self._add_node(event.args["type"], event.args["x"], event.args["y"])

    async def _on_quick_add(self, event: Any) -> None:
        """A type chosen from quick add; dropped from a port, connected to its first free input
        that takes that port's type."""
        node = await self._add_node(event.args["type"], event.args["x"], event.args["y"])
        source = event.args.get("from")
        if node is None or not source:
            return
        source_node, _, source_port = str(source).partition(".")
        outputs = self._ports_of(source_node, "outputs")
        found = next((p for p in outputs if p["name"] == source_port), None)
        taken = {edge["to"] for edge in self.graph["edges"]}
        for port in self._ports_of(node["id"], "inputs"):
            target = f"{node['id']}.{port['name']}"
            if found and compatible(found["type"], port["type"]) and (
                port["many"] or target not in taken
            ):
                edge = {"from": str(source), "to": target}
                self.graph["edges"].append(edge)
                self.canvas.add_edge(edge)
                self._redraw_faces({node["id"]})
                return
        ui.notify(f"{node['id']} has no input that takes {source}", type="warning")

    def _ports_of(self, node_id: str, side: str) -> list[dict[str, Any]]:
        node = self.node(node_id)
        ports = self.ports.get(node_id) or self.types.get(node["type"], {})
        return [port_view(port) for port in ports.get(side, [])]

    async def _add_node(self, node_type: str, x: float, y: float) -> dict[str, Any] | None:
        info = self.types.get(node_type)
        if info is None:
            return None
        node_id = new_node_id(node_type, {node["id"] for node in self.graph["nodes"]})
        params = starting_params(info["params_schema"], node_id)
        node: dict[str, Any] = {
            "id": node_id, "type": node_type, "params": params, "ui": {"x": x, "y": y},
        }
        self._checkpoint()
        self.graph["nodes"].append(node)
        await self._refresh_ports([node["id"]])
        self.canvas.add_node(self._node_view(node))
        self._changed()
        return node

    async def _on_param_edit(self, event: Any) -> None:
        """The node's main param, edited in place on the canvas."""
        node_id, name = str(event.args["id"]), str(event.args["name"])
        await self._set_param(node_id, name, event.args["value"])
        if self.selected == [node_id]:
            self._show_params()

    def _on_note_add(self, event: Any) -> None:
        if self.graph is not self.document:
            ui.notify("Sticky notes go on the workflow itself, not inside a body", type="warning")
            return
        self._checkpoint()
        self.canvas.add_note(self.notes.add(event.args["x"], event.args["y"]))
        self._changed()

    def _on_note_edit(self, event: Any) -> None:
        self._checkpoint()
        self.notes.edit(str(event.args["id"]), str(event.args["text"]))
        self._changed()

    def _on_viewport(self, event: Any) -> None:
        self.view.set_viewport(event.args)

    # -- params -----------------------------------------------------------------------------

    def _show_params(self) -> None:
        self.params_box.clear()
        with self.params_box:
            if len(self.selected) != 1:
                ui.label("Select one node to edit its params.").classes("text-gray-500")
                return
            node = self.node(self.selected[0])
            info = self.types.get(node["type"], {})
            ui.label(f"{node['id']} · {info.get('title', node['type'])}").classes("font-bold")
            ui.label(info.get("description", "")).classes("text-xs text-gray-500")
            node_id = node["id"]

            def changed(name: str, value: Any) -> None:
                background_tasks.create(self._set_param(node_id, name, value))

            problems = self.problems.get(node_id)
            params_form(
                info.get("params_schema", {}), node.get("params", {}), changed, models=self.models,
                errors=problems.params if problems else None,
            )

    async def _set_param(self, node_id: str, name: str, value: Any) -> None:
        node = self.node(node_id)
        params = node.setdefault("params", {})
        if params.get(name, MISSING) == value:
            return
        self._checkpoint()
        if value is MISSING:
            params.pop(name, None)
        else:
            params[name] = value
        self._changed()
        await self._refresh_ports([node_id])
        self.canvas.update_node(self._node_view(node))
        fed = {e["to"].partition(".")[0] for e in self.graph["edges"]
               if e["from"].partition(".")[0] == node_id}
        self._redraw_faces(fed)

    # -- undo, redo, copy, paste, layout ----------------------------------------------------

    def _restore(self, document: dict[str, Any]) -> None:
        self.document = document
        self.canvas.load(self._graph())
        self.selected = []
        self.view.set_selection(self.selected)
        self._show_params()
        self._changed()

    def undo_change(self) -> None:
        if self.undo:
            self.redo.append(copy.deepcopy(self.document))
            self._restore(self.undo.pop())

    def redo_change(self) -> None:
        if self.redo:
            self.undo.append(copy.deepcopy(self.document))
            self._restore(self.redo.pop())

    def copy(self) -> None:
        chosen = set(self.selected)
        if not chosen:
            return
        self.clipboard = copied(self.graph, chosen)
        ui.notify(f"Copied {len(self.clipboard['nodes'])} node(s)")

    async def paste(self) -> None:
        if not self.clipboard:
            return
        nodes, edges = pasted(self.graph, self.clipboard)
        self._checkpoint()
        self.graph["nodes"].extend(nodes)
        self.graph["edges"].extend(edges)
        await self._refresh_ports([node["id"] for node in nodes])
        self._restore(self.document)

    async def group(self) -> None:
        """The selected nodes become a body of the document, run by one `subgraph` node."""
        chosen = set(self.selected)
        if not chosen:
            ui.notify("Select the nodes to group first")
            return
        before = copy.deepcopy(self.document)
        try:
            node_id = group_into_subgraph(
                self.graph, self.document.setdefault("subgraphs", {}), chosen
            )
        except GroupRefused as exc:
            self.document = before
            ui.notify(str(exc), type="warning")
            return
        self.undo.append(before)
        del self.undo[:-UNDO_DEPTH]
        self.redo.clear()
        if node_id is not None:
            await self._refresh_ports([node_id])
        self._restore(self.document)

    def auto_layout(self) -> None:
        positions = layered_positions(self.graph)
        self._checkpoint()
        for node in self.graph["nodes"]:
            node["ui"] = {**(node.get("ui") or {}), **positions[node["id"]]}
        self.canvas.move_nodes(positions)
        self.canvas.fit()
        self._changed()

    # -- save, validate, run ----------------------------------------------------------------

    async def save(self) -> bool:
        """Save a new version, a draft with issues too (they are marked, as Validate marks
        them); False when nothing was saved (a conflict, or a document that does not decode)."""
        try:
            response = await self.api.call(
                "PUT", f"/api/workflows/{self.workflow_id}", body=self.document,
                headers={"If-Match": f'"{self.version}"'},
            )
        except ApiError as exc:
            if exc.status == 409:
                ui.notify("Someone saved this workflow meanwhile: your changes are kept here; "
                          "reload to see theirs.", type="negative", multi_line=True)
            else:
                self.show_errors(exc.errors, exc.detail)
            return False
        saved = response.json()
        self.version = saved["version"]
        self.dirty = False
        self.issues = list(saved.get("issues") or [])
        if self.issues:
            self.state_label.set_text(
                f"saved as version {self.version}, {len(self.issues)} issue(s) left")
            self.show_errors(self.issues, f"Saved as version {self.version} with issues",
                             kind="warning")
        else:
            self.state_label.set_text(f"saved as version {self.version}")
            self.show_errors([], "")
        background_tasks.create(self.versions.refresh())
        return True

    async def validate(self) -> None:
        answer = await self.api.post("/api/workflows/validate", self.document)
        self.issues = list(answer["errors"])
        if answer["valid"]:
            self.show_errors([], "")
            ui.notify("The workflow is valid", type="positive")
        else:
            self.show_errors(answer["errors"], "The workflow has errors")

    def show_errors(
        self, errors: list[dict[str, Any]], title: str,
        kind: Literal["negative", "warning"] = "negative",
    ) -> None:
        """Errors on their nodes, ports and params fields, and listed in a notice; none: clear."""
        self.problems = locate(errors)
        self.canvas.mark_invalid(canvas_marks(self.problems))
        self._show_params()
        if not title:
            return
        lines = [f"{e.get('node') or '-'}: {e['message']}" for e in errors] or [title]
        ui.notify(title + ("\n" + "\n".join(lines[:8]) if errors else ""),
                  type=kind, multi_line=True, classes="nl-errors")
