"""The agents and workspace-files pages: plain CRUD over `/api/agents` and `/api/files`."""

from __future__ import annotations

from typing import Any

from nicegui import events, ui

from ui.client import Api, ApiError

AGENT_DEFAULTS: dict[str, Any] = {
    "name": "", "model": "", "description": "", "system_prompt": "", "tools": [],
    "temperature": 0.0, "max_steps": 5, "max_tokens": 256, "fallbacks": [],
}


async def agents_page(api: Api) -> None:
    catalogue = await api.get("/api/node-types")
    agent_type = next((t for t in catalogue["items"] if t["type"] == "agent"), None)
    tools: list[str] = []
    if agent_type is not None:
        tools = agent_type["params_schema"]["properties"]["tools"]["items"].get("examples", [])
    models = [m["name"] for m in (await api.get("/api/models"))["items"]]
    box = ui.column().classes("w-full max-w-3xl mx-auto p-4")

    async def refresh() -> None:
        page = await api.get("/api/agents", limit=200)
        box.clear()
        with box:
            with ui.row().classes("items-center w-full"):
                ui.label("Agents").classes("text-xl font-bold")
                ui.space()
                ui.button("New agent", on_click=lambda: edit(None))
            if not page["items"]:
                ui.label("No saved agents: an agent node can name one by its id.")
            for record in page["items"]:
                config = record["config"]
                with ui.row().classes("items-center w-full border-b py-1").props(
                    f'data-agent="{record["id"]}"'
                ):
                    ui.label(config["name"]).classes("font-bold")
                    ui.label(f"{config['model']} · {', '.join(config['tools']) or 'no tools'}")
                    if config.get("description"):
                        ui.label(config["description"]).classes("text-sm text-gray-600")
                    ui.label(record["id"]).classes("text-xs text-gray-500")
                    ui.space()
                    ui.button("Edit", on_click=lambda r=record: edit(r)).props("flat dense").mark(
                        f"edit-{record['id']}"
                    )
                    ui.button("Delete", on_click=lambda r=record: delete(r["id"])).props(
                        "flat dense color=negative"
                    ).mark(f"delete-{record['id']}")

    async def delete(agent_id: str) -> None:
        await api.call("DELETE", f"/api/agents/{agent_id}")
        await refresh()

    def edit(record: dict[str, Any] | None) -> None:
        values = {**AGENT_DEFAULTS, **(record["config"] if record else {})}
        with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            ui.label("Edit agent" if record else "New agent").classes("font-bold")
            name = ui.input("name", value=values["name"]).classes("w-full").mark("agent-name")
            model = ui.select(models, label="model", value=values["model"] or None)
            model.classes("w-full").mark("agent-model")
            description = ui.input("description", value=values["description"])
            description.classes("w-full").mark("agent-description")
            prompt = ui.textarea("system prompt", value=values["system_prompt"]).classes("w-full")
            chosen = ui.select(tools, label="tools", value=values["tools"], multiple=True)
            chosen.classes("w-full")
            with ui.row().classes("w-full no-wrap"):
                temperature = ui.number("temperature", value=values["temperature"], min=0,
                                        max=2, step=0.1)
                steps = ui.number("max steps", value=values["max_steps"], min=1, max=50,
                                  format="%d")
                max_tokens = ui.number("max tokens per step", value=values["max_tokens"],
                                       min=16, max=100_000, format="%d")
            fallbacks = ui.select(models, label="fallback models (in order)",
                                  value=values["fallbacks"], multiple=True).classes("w-full")

            async def save() -> None:
                body = {
                    "name": name.value, "model": model.value or "", "system_prompt": prompt.value,
                    "tools": list(chosen.value or []), "temperature": float(temperature.value or 0),
                    "max_steps": int(steps.value or 1), "description": description.value or "",
                    "max_tokens": int(max_tokens.value or 256),
                    "fallbacks": list(fallbacks.value or []),
                }
                try:
                    if record:
                        await api.call("PUT", f"/api/agents/{record['id']}", body=body)
                    else:
                        await api.post("/api/agents", body)
                except ApiError as exc:  # the dialog stays open with what was typed
                    ui.notify(f"Not saved: {exc.detail}", type="negative", multi_line=True,
                              position="top")  # not over the dialog's buttons
                    return
                dialog.close()
                await refresh()

            with ui.row():
                ui.button("Save agent", on_click=save)
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    await refresh()


async def files_page(api: Api) -> None:
    state = {"dir": ""}
    box = ui.column().classes("w-full max-w-3xl mx-auto p-4")

    async def refresh() -> None:
        try:
            page = await api.get("/api/files", dir=state["dir"], limit=200)
        except ApiError as exc:
            ui.notify(exc.detail, type="negative")
            return
        box.clear()
        with box:
            with ui.row().classes("items-center w-full"):
                ui.label(f"Workspace /{state['dir']}").classes("text-xl font-bold")
                ui.space()
                if state["dir"]:
                    ui.button("Up", on_click=lambda: go(state["dir"].rpartition("/")[0]))
                ui.upload(label="Upload", auto_upload=True, on_upload=upload).props(
                    "flat"
                ).classes("w-48")
            if not page["items"]:
                ui.label("This folder is empty.")
            for item in page["items"]:
                with ui.row().classes("items-center w-full border-b py-1").props(
                    f'data-file="{item["path"]}"'
                ):
                    if item["type"] == "directory":
                        ui.button(item["name"] + "/", on_click=lambda i=item: go(i["path"])).props(
                            "flat dense no-caps"
                        )
                    else:
                        ui.button(item["name"], on_click=lambda i=item: view(i["path"])).props(
                            "flat dense no-caps"
                        )
                        ui.label(f"{item['size']} bytes").classes("text-xs text-gray-500")
                    ui.space()
                    ui.button("Delete", on_click=lambda i=item: delete(i["path"])).props(
                        "flat dense color=negative"
                    ).mark(f"delete-{item['path']}")

    async def go(folder: str) -> None:
        state["dir"] = folder.strip("/")
        await refresh()

    async def view(path: str) -> None:
        response = await api.call("GET", f"/api/files/{path}")
        with ui.dialog() as dialog, ui.card().classes("w-[48rem]"):
            ui.label(path).classes("font-bold")
            ui.code(response.text[:100_000], language="text").classes("w-full")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    async def delete(path: str) -> None:
        try:
            await api.call("DELETE", f"/api/files/{path}")
        except ApiError as exc:
            ui.notify(exc.detail, type="negative")
        await refresh()

    async def upload(event: events.UploadEventArguments) -> None:
        path = f"{state['dir']}/{event.file.name}".strip("/")
        content = await event.file.read()
        try:
            await api.put_bytes(f"/api/files/{path}", content)
        except ApiError as exc:
            ui.notify(f"{event.file.name}: {exc.detail}", type="negative")
            return
        ui.notify(f"Uploaded {path}", type="positive")
        await refresh()

    await refresh()
