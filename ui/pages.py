"""The canvas's pages: workflows, the editor, a run, agents, files, models, signing in. Each talks
to the REST API; one that the API refuses for want of a token leads to `/signin`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import app, events, ui

from ui import auth
from ui.chat import chat_page
from ui.client import Api, ApiError
from ui.collections import collections_page
from ui.editor import Editor
from ui.evaluations import evaluations_page
from ui.inbox import inbox_count, inbox_page
from ui.manage import agents_page, files_page
from ui.run_page import run_page
from ui.runs_list import runs_list_page
from ui.tokens import tokens_page
from ui.triggers import triggers_page
from ui.usage import usage_page

STATIC = Path(__file__).parent / "static"
INBOX_REFRESH_S = 10.0  # how often the header's count of answers awaited is read again
HEAD = (
    '<link rel="stylesheet" href="/nodeloom-ui/vendor/core/style.css">'
    '<link rel="stylesheet" href="/nodeloom-ui/vendor/core/theme-default.css">'
    '<link rel="stylesheet" href="/nodeloom-ui/vendor/controls/style.css">'
    '<link rel="stylesheet" href="/nodeloom-ui/vendor/minimap/style.css">'
    '<link rel="stylesheet" href="/nodeloom-ui/static/utilities.css">'
    '<link rel="stylesheet" href="/nodeloom-ui/static/nodeloom.css">'
)


def register(api_url: Callable[[], str]) -> None:
    """Add the pages; ``api_url()`` gives the API's base URL once the server runs."""
    app.add_static_files("/nodeloom-ui/vendor", Path(__file__).parent / "vendor")
    app.add_static_files("/nodeloom-ui/static", STATIC)

    def client() -> Api:
        """An API client for this browser tab, closed when the tab goes away."""
        api = Api(api_url(), auth.token())
        ui.context.client.on_delete(api.close)
        return api

    def frame(title: str) -> None:
        ui.add_head_html(HEAD)
        ui.page_title(f"{title} · nodeloom")
        ui.context.client.on_exception(auth.api_failed)
        with ui.header().classes("items-center py-1 px-3 bg-slate-800"):
            ui.label("nodeloom").classes("font-bold text-white mr-4")
            for text, target in (("Workflows", "/"), ("Runs", "/runs"), ("Chat", "/chat"),
                                 ("Agents", "/agents"), ("Files", "/files"),
                                 ("Collections", "/collections"), ("Models", "/models"),
                                 ("Usage", "/usage")):
                ui.link(text, target).classes("text-white")
            with ui.link(target="/inbox").classes("text-white").props("data-inbox-link"):
                ui.label("Inbox")
                count = ui.badge("", color="orange").props("data-inbox-count")
                count.set_visibility(False)

            api = client()

            async def counted() -> None:
                waiting = await inbox_count(api)
                if count.text != str(waiting):  # the page is sent nothing while it stays so
                    count.set_text(str(waiting))
                    count.set_visibility(waiting > 0)

            page = ui.context.client
            timers: list[ui.timer] = []

            async def connected() -> None:
                # A timer made while the page builds would have it sent before it is built: the
                # count is read once the page is shown (and again each time it reconnects).
                if not timers:
                    with page:
                        timers.append(ui.timer(INBOX_REFRESH_S, counted))
                await counted()

            page.on_connect(connected)
            if auth.token():
                ui.link("Tokens", "/tokens").classes("text-white")
                ui.space()
                ui.button("Sign out", on_click=auth.sign_out).props("flat dense color=white")

    @ui.page("/")
    async def workflows_page() -> RedirectResponse | None:
        frame("Workflows")
        return await _guarded(workflow_list(client()))

    @ui.page("/workflows/{workflow_id}")
    async def editor_page(workflow_id: str) -> RedirectResponse | None:
        frame("Editor")
        return await _guarded(Editor(client(), workflow_id).build(),
                              f"Cannot open workflow {workflow_id}")

    @ui.page("/workflows/{workflow_id}/evaluations")
    async def evaluations(workflow_id: str) -> RedirectResponse | None:
        frame("Evaluations")
        return await _guarded(evaluations_page(client(), workflow_id),
                              f"Cannot show the evaluations of workflow {workflow_id}")

    @ui.page("/workflows/{workflow_id}/triggers")
    async def triggers(workflow_id: str) -> RedirectResponse | None:
        frame("Triggers")
        return await _guarded(triggers_page(client(), workflow_id),
                              f"Cannot show the triggers of workflow {workflow_id}")

    @ui.page("/runs")
    async def runs() -> RedirectResponse | None:
        frame("Runs")
        return await _guarded(runs_list_page(client()))

    @ui.page("/runs/{run_id}")
    async def run(run_id: str) -> RedirectResponse | None:
        frame("Run")
        return await _guarded(run_page(client(), run_id), f"Cannot show run {run_id}")

    @ui.page("/inbox")
    async def inbox() -> RedirectResponse | None:
        frame("Inbox")
        return await _guarded(inbox_page(client()))

    @ui.page("/chat")
    async def chat() -> RedirectResponse | None:
        frame("Chat")
        return await _guarded(chat_page(client(), None))

    @ui.page("/chat/{conversation_id}")
    async def conversation(conversation_id: str) -> RedirectResponse | None:
        frame("Chat")
        return await _guarded(chat_page(client(), conversation_id),
                              f"Cannot show conversation {conversation_id}")

    @ui.page("/agents")
    async def agents() -> RedirectResponse | None:
        frame("Agents")
        return await _guarded(agents_page(client()))

    @ui.page("/usage")
    async def usage() -> RedirectResponse | None:
        frame("Usage")
        return await _guarded(usage_page(client()))

    @ui.page("/files")
    async def files() -> RedirectResponse | None:
        frame("Files")
        return await _guarded(files_page(client()))

    @ui.page("/collections")
    async def collections() -> RedirectResponse | None:
        frame("Collections")
        return await _guarded(collections_page(client()))

    @ui.page("/tokens")
    async def tokens() -> RedirectResponse | None:
        frame("Tokens")
        return await _guarded(tokens_page(client()))

    @ui.page("/signin")
    async def signin(next: str = "/") -> None:
        ui.add_head_html(HEAD)
        ui.page_title("Sign in · nodeloom")
        await auth.signin_page(api_url, next)

    @ui.page("/models")
    async def models_page() -> RedirectResponse | None:
        frame("Models")
        try:
            models = await client().get("/api/models")
        except ApiError as exc:
            return _refused(exc, "Models unavailable")
        rows = [
            {"name": m["name"], "provider": m["provider"],
             "available": "yes" if m["available"] else "no",
             "why": m.get("reason") or "", "memory": m.get("memory") or ""}
            for m in models["items"]
        ]
        ui.table(rows=rows, columns=[{"name": k, "label": k, "field": k} for k in
                                     ("name", "provider", "available", "why", "memory")])
        return None


async def _guarded(
    page: Awaitable[None], what: str = "The server answered"
) -> RedirectResponse | None:
    """Build a page; the API's refusal shows in its place, or leads to `/signin` (401)."""
    try:
        await page
    except ApiError as exc:
        return _refused(exc, what)
    return None


def _refused(exc: ApiError, what: str) -> RedirectResponse | None:
    if exc.status == 401:
        return auth.to_signin()
    ui.label(f"{what}: {exc.detail}").classes("text-red-700").props("data-refused")
    return None


def ago(stamp: str) -> str:
    """An API timestamp as a person reads it: `just now`, `5 min ago`, `3 h ago`, a date."""
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return then.strftime("%Y-%m-%d")


async def workflow_list(api: Api) -> None:
    known_tags: set[str] = set()

    async def refresh() -> None:
        query: dict[str, Any] = {"limit": 200}
        if search.value:
            query["q"] = str(search.value)
        if tags.value:
            query["tag"] = str(tags.value)
        page = await api.get("/api/workflows", **query)
        known_tags.update(tag for item in page["items"] for tag in item.get("tags") or [])
        tags.set_options(sorted(known_tags), value=tags.value)
        box.clear()
        with box:
            if not page["items"]:
                ui.label("No workflows match." if query.keys() - {"limit"} else
                         "No workflows yet: create one or import a JSON file.")
            for item in page["items"]:
                workflow_row(item)

    def workflow_row(item: dict[str, Any]) -> None:
        with ui.row().classes("items-start w-full border-b py-2 gap-3").props(
            f'data-workflow="{item["id"]}"'
        ):
            with ui.column().classes("gap-0 grow"):
                with ui.row().classes("items-center gap-2"):
                    ui.link(item["name"], f"/workflows/{item['id']}").classes("font-bold")
                    ui.label(f"v{item['version']} · {item.get('node_count', 0)} nodes").classes(
                        "text-xs text-gray-500")
                    for tag in item.get("tags") or []:
                        ui.badge(tag, color="blue-1", text_color="blue-10").props(
                            f'data-tag="{tag}"')
                if item.get("description"):
                    ui.label(item["description"]).classes("text-sm text-gray-700")
                last = item.get("last_run")
                updated = f"updated {ago(item['updated_at'])}"
                with ui.row().classes("items-center gap-2 text-xs text-gray-500"):
                    ui.label(updated)
                    if last:
                        ui.link(f"last run {last['status']} {ago(last['created_at'])}",
                                f"/runs/{last['id']}").props(
                            f'data-last-run="{last["status"]}"').classes("text-xs")
                    else:
                        ui.label("never run")
            ui.link("Evaluations", f"/workflows/{item['id']}/evaluations").props(
                f'data-evaluations="{item["id"]}"'
            ).classes("text-sm")
            ui.link("Schedules & webhooks", f"/workflows/{item['id']}/triggers").props(
                f'data-triggers="{item["id"]}"'
            ).classes("text-sm")
            ui.button("Duplicate", on_click=lambda i=item: duplicate(i["id"])).props(
                "flat dense").mark(f"duplicate-{item['id']}")
            ui.button("Export", on_click=lambda i=item: export(i["id"])).props("flat dense")
            ui.button("Delete", on_click=lambda i=item: delete(i["id"])).props(
                "flat dense color=negative"
            ).mark(f"delete-{item['id']}")

    async def duplicate(workflow_id: str) -> None:
        record = await api.get(f"/api/workflows/{workflow_id}")
        document = {**record["document"], "name": f"{record['document']['name']} (copy)"}
        try:
            copy = await api.post("/api/workflows", document)
        except ApiError as exc:
            ui.notify(f"Not duplicated: {exc.detail}", type="negative")
            return
        ui.notify(f"Duplicated as {copy['document']['name']}", type="positive")
        await refresh()

    async def create() -> None:
        document = {"schema_version": 1, "name": "Untitled", "nodes": [], "edges": []}
        record = await api.post("/api/workflows", document)
        ui.navigate.to(f"/workflows/{record['id']}")

    async def imported(event: events.UploadEventArguments) -> None:
        try:
            document = json.loads(await event.file.read())
            record = await api.post("/api/workflows", document)
        except json.JSONDecodeError as exc:
            ui.notify(f"{event.file.name} is not JSON: {exc}", type="negative")
            return
        except ApiError as exc:
            lines = [f"{e.get('node') or '-'}: {e['message']}" for e in exc.errors[:8]]
            ui.notify("\n".join([f"{event.file.name}: {exc.detail}", *lines]),
                      type="negative", multi_line=True)
            return
        issues = record.get("issues") or []
        if issues:
            lines = [f"{e.get('node') or '-'}: {e['message']}" for e in issues[:8]]
            ui.notify("\n".join([f"Imported {record['document']['name']} with {len(issues)} "
                                 "issue(s) to fix before it runs", *lines]),
                      type="warning", multi_line=True)
        else:
            ui.notify(f"Imported {record['document']['name']}", type="positive")
        await refresh()

    async def export(workflow_id: str) -> None:
        record = await api.get(f"/api/workflows/{workflow_id}")
        text = json.dumps(record["document"], indent=2, sort_keys=True)
        ui.download.content(text, f"{record['document']['name']}.json", "application/json")

    async def delete(workflow_id: str) -> None:
        await api.call("DELETE", f"/api/workflows/{workflow_id}")
        await refresh()

    with ui.column().classes("w-full max-w-4xl mx-auto p-4"):
        with ui.row().classes("items-center w-full"):
            ui.label("Workflows").classes("text-xl font-bold")
            ui.space()
            ui.button("New", on_click=create)
            ui.upload(label="Import JSON", auto_upload=True,
                      on_upload=imported).props("accept=.json flat").classes("w-48")
        with ui.row().classes("items-center w-full gap-2"):
            search = ui.input(placeholder="Search names and descriptions").props(
                "dense clearable data-workflow-search debounce=250").classes("w-80")
            tags = ui.select([], label="Tag", clearable=True).props(
                "dense data-tag-filter").classes("w-48")
        box = ui.column().classes("w-full")
    search.on_value_change(refresh)
    tags.on_value_change(refresh)
    await refresh()

