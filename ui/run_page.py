"""`/runs/{id}` (SPEC §8): one run: its status, workflow, parent and child runs, inputs, every
node's status, reason, duration and output, and its outputs; while it runs, its events update the
page as they happen (streamed tokens included)."""

from __future__ import annotations

import json
from typing import Any

from nicegui import background_tasks, ui

from ui.client import Api, ApiError
from ui.inbox import answer_form

FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}
SHOWN_CHARS = 2000


def shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " …"


def _duration(state: dict[str, Any]) -> str:
    duration = state.get("duration_ms")
    return "" if duration is None else f"{duration:.1f} ms"


class NodeRow:
    """One node's line: status, reason, duration, output (or error, or streamed text)."""

    def __init__(self, node_id: str) -> None:
        self.text = ""
        with ui.row().classes("w-full items-start border-b py-1 gap-3").props(
            f'data-run-node="{node_id}"'
        ) as self.row:
            ui.label(node_id).classes("font-mono w-40 shrink-0")
            self.status = ui.label("pending").classes("w-24 shrink-0")
            self.duration = ui.label("").classes("w-24 shrink-0 text-gray-500")
            with ui.column().classes("grow gap-0"):
                self.reason = ui.label("").classes("text-xs text-gray-500")
                self.output = ui.label("").classes("whitespace-pre-wrap text-sm font-mono")
                self.answer_box = ui.column().classes("w-full")  # a waiting node's form
        self.set({"status": "pending"})

    def set(self, state: dict[str, Any]) -> None:
        status = str(state.get("status", "pending"))
        self.status.set_text(status)
        self.row.props(f"data-status={status}")
        if "reason" in state:
            self.reason.set_text(state.get("reason") or "")
        if state.get("duration_ms") is not None:
            self.duration.set_text(_duration(state))
        if state.get("error"):
            self.output.set_text(str(state["error"]))
            self.output.classes(replace="whitespace-pre-wrap text-sm font-mono text-red-700")
        elif state.get("output") is not None:
            self.output.set_text(shown(state["output"]))

    def token(self, text: str) -> None:
        self.text += text
        self.output.set_text(shown(self.text))


class RunView:
    def __init__(self, api: Api, run_id: str) -> None:
        self.api = api
        self.run_id = run_id
        self.rows: dict[str, NodeRow] = {}
        self.box = ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-2")

    async def build(self) -> None:
        run = await self.api.get(f"/api/runs/{self.run_id}")
        order = await self._node_order(run)
        self.box.clear()
        with self.box:
            self._summary(run)
            await self._children()
            ui.label("Nodes").classes("text-lg font-bold mt-2")
            self.rows = {}
            inside = grouped([node_id for node_id in run["nodes"] if "/" in node_id])
            for node_id in order:
                if "/" in node_id:
                    continue  # listed under its body node, by item
                self._row(node_id, run)
                if node_id in inside:
                    self._instances(node_id, inside[node_id], run)
            ui.label("Outputs").classes("text-lg font-bold mt-2")
            self.outputs = ui.column().classes("w-full")
            self._show_outputs(run.get("outputs") or {})
        if run["status"] == "waiting":  # a form on each node waiting for an answer
            await self._questions()
        elif run["status"] not in FINISHED:
            background_tasks.create(self.follow(), name=f"follow {self.run_id}", context=self.box)

    async def _questions(self) -> None:
        async def answered(_run: dict[str, Any]) -> None:
            await self.build()

        for item in (await self.api.get("/api/inbox"))["items"]:
            row = self.rows.get(item["node"])
            if item["run_id"] == self.run_id and row is not None:
                with row.answer_box:
                    answer_form(self.api, item, answered)

    def _row(self, node_id: str, run: dict[str, Any]) -> None:
        self.rows[node_id] = NodeRow(node_id)
        self.rows[node_id].set(run["nodes"].get(node_id) or {"status": "pending"})

    def _instances(
        self, body_node: str, instances: dict[str, list[str]], run: dict[str, Any]
    ) -> None:
        """A body node's nodes, one fold per item or iteration (the first `MAX_INSTANCES`)."""
        count = len(instances)
        with ui.expansion(f"{body_node}: {count} item{'s' if count != 1 else ''}").classes(
            "w-full ml-6"
        ).props(f'data-run-body="{body_node}"'):
            for instance, node_ids in list(instances.items())[:MAX_INSTANCES]:
                failed = any(run["nodes"][n]["status"] == "failed" for n in node_ids)
                with ui.expansion(instance + (" (failed)" if failed else "")).classes(
                    "w-full"
                ).props(f'data-run-instance="{instance}"'):
                    for node_id in node_ids:
                        self._row(node_id, run)
            if count > MAX_INSTANCES:
                ui.label(f"… and {count - MAX_INSTANCES} more (the API lists them all)").classes(
                    "text-sm text-gray-500"
                )

    async def _node_order(self, run: dict[str, Any]) -> list[str]:
        """The workflow's nodes in document order (the run lists only those that started)."""
        if not run.get("workflow_id"):
            return list(run["nodes"])
        path = f"/api/workflows/{run['workflow_id']}/versions/{run['workflow_version']}"
        try:
            document = (await self.api.get(path))["document"]
        except (ApiError, KeyError):
            return list(run["nodes"])
        order = [node["id"] for node in document["nodes"]]
        return order + [node_id for node_id in run["nodes"] if node_id not in order]

    def _summary(self, run: dict[str, Any]) -> None:
        with ui.row().classes("items-center gap-3"):
            ui.label(f"Run {run['id']}").classes("text-xl font-bold")
            self.status = ui.label(run["status"]).classes("text-lg").props(
                f"data-run-status={run['status']}"
            )
        with ui.row().classes("gap-4 text-sm"):
            about = f"{run.get('workflow_name') or 'workflow'} (version {run['workflow_version']})"
            if run.get("workflow_id"):
                ui.link(about, f"/workflows/{run['workflow_id']}").props("data-workflow-link")
            else:
                ui.label(run.get("workflow_name") or "a workflow file")
            if run.get("parent_run_id"):
                ui.link(f"parent run {run['parent_run_id']}",
                        f"/runs/{run['parent_run_id']}").props("data-parent-link")
            for name in ("created_at", "started_at", "finished_at"):
                if run.get(name):
                    ui.label(f"{name.removesuffix('_at')} {str(run[name])[:19]}").classes(
                        "text-gray-500"
                    )
        if run.get("from_node"):
            changed = (run.get("changes") or {}).get("params") or {}
            names = ", ".join(f"{node}.{name}" for node, params in changed.items()
                              for name in params)
            ui.label(f"rerun from {run['from_node']}" + (f", changed {names}" if names else ""))
        self.children = ui.row().classes("gap-3 text-sm")
        self.error = ui.label(run.get("error") or "").classes("text-red-700")
        ui.label("Inputs").classes("text-lg font-bold mt-2")
        ui.code(json.dumps(run.get("inputs") or {}, indent=2, ensure_ascii=False),
                language="json").classes("w-full").props("data-run-inputs")

    async def _children(self) -> None:
        """Links to the reruns made from this run."""
        try:
            tree = await self.api.get(f"/api/runs/{self.run_id}/tree")
        except ApiError:
            return
        found = _find(tree, self.run_id)
        with self.children:
            for child in (found or {}).get("children", []):
                ui.link(f"rerun {child['id']} ({child['status']})", f"/runs/{child['id']}").props(
                    "data-child-link"
                )

    def _show_outputs(self, outputs: dict[str, Any]) -> None:
        self.outputs.clear()
        with self.outputs:
            if not outputs:
                ui.label("none yet").classes("text-gray-500")
            for name, value in outputs.items():
                ui.label(name).classes("font-bold")
                ui.code(shown(value), language="text").classes("w-full").props(
                    f'data-output="{name}"'
                )

    async def follow(self) -> None:
        """The run's events until it finishes; then the page is read again in full."""
        try:
            async for event in self.api.events(self.run_id):
                self._apply(event)
        except ApiError as exc:
            ui.notify(f"Lost the run's events: {exc.detail}", type="warning")
            return
        await self.build()

    def _apply(self, event: dict[str, Any]) -> None:
        kind, data = event["type"], event.get("data") or {}
        row = self.rows.get(event.get("node") or "")
        if kind == "run.started":
            self.status.set_text("running")
            self.status.props("data-run-status=running")
            for origin, nodes in (data.get("reused") or {}).items():
                for node_id in nodes:
                    if node_id in self.rows:
                        self.rows[node_id].set({"status": "cached",
                                                "reason": f"reused from run {origin}"})
        elif row is None:
            return
        elif kind == "node.started":
            row.set({"status": "running", "reason": ""})
        elif kind == "node.token":
            row.token(str(data.get("text", "")))
        elif kind == "node.completed":
            row.set(data)
        elif kind == "node.failed" and not data.get("will_retry"):
            row.set({"status": "failed", "error": data.get("error", "")})
        elif kind == "node.skipped":
            row.set({"status": "skipped", "reason": data.get("reason", "")})


MAX_INSTANCES = 50  # items or iterations of a body node listed on the page


def grouped(paths: list[str]) -> dict[str, dict[str, list[str]]]:
    """Paths of nodes inside bodies by their top-level body node, then by its instance
    (``m[3]``, ``lp#2``, ``s``), in the order given."""
    groups: dict[str, dict[str, list[str]]] = {}
    for path in paths:
        instance = path.partition("/")[0]
        body_node = instance.partition("[")[0].partition("#")[0]
        groups.setdefault(body_node, {}).setdefault(instance, []).append(path)
    return groups


def _find(tree: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    if tree.get("id") == run_id:
        return tree
    for child in tree.get("children", []):
        found = _find(child, run_id)
        if found is not None:
            return found
    return None


async def run_page(api: Api, run_id: str) -> None:
    await RunView(api, run_id).build()
