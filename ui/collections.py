"""The collections page (SPEC §14): create a collection, add workspace files to it by glob and
follow the indexing, and search it: the ranked chunks with their sources. Plain calls to
`/api/collections`."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui.client import Api, ApiError

REFRESH_S = 1.0
MODES = ["default", "keyword", "vector", "hybrid"]


def progress_text(collection: dict[str, Any]) -> str:
    """What the latest indexing job did or is doing, in words."""
    job = collection.get("indexing")
    if job is None:
        return "nothing indexed yet"
    progress = job["progress"]
    text = (
        f"{job['status']}: {progress.get('done', 0)}/{progress.get('total', 0)} files, "
        f"{progress.get('unchanged', 0)} unchanged, {progress.get('failed', 0)} failed, "
        f"{progress.get('removed', 0)} removed"
    )
    if progress.get("error"):
        text += f" ({progress['error']})"
    return text


async def collections_page(api: Api) -> None:
    models = [m["name"] for m in (await api.get("/api/models"))["items"]]
    with ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-3"):
        ui.label("Collections").classes("text-xl font-bold")
        with ui.card().classes("w-full"):
            ui.label("New collection").classes("font-bold")
            with ui.row().classes("items-end w-full"):
                name = ui.input("name").props("data-collection-name")
                model = ui.select(
                    models, label="embedding model (optional)", clearable=True
                ).classes("w-64")
                size = ui.number("chunk size", value=800, min=100, max=20000).classes("w-32")
                created_error = ui.label("").classes("text-red-700 text-sm")

                async def create() -> None:
                    body: dict[str, Any] = {"name": name.value, "chunk_size": int(size.value)}
                    if model.value:
                        body["embedding_model"] = model.value
                    try:
                        await api.post("/api/collections", body)
                    except ApiError as exc:
                        created_error.set_text(exc.detail)
                        return
                    created_error.set_text("")
                    name.set_value("")
                    await listing.refresh()

                ui.button("Create", on_click=create).props("data-collection-create")

        listing = Listing(api)
        await listing.build()
        await search_box(api, listing)


class Listing:
    """Every collection with what it holds and its indexing progress, refreshed while a job
    runs."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.box = ui.column().classes("w-full gap-2")
        self.items: list[dict[str, Any]] = []
        self.on_change: list[Any] = []
        self._timer = ui.timer(REFRESH_S, self._tick, active=False)

    async def build(self) -> None:
        await self.refresh()

    async def _tick(self) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        self.items = (await self.api.get("/api/collections"))["items"]
        running = any(
            (item.get("indexing") or {}).get("status") == "running" for item in self.items
        )
        self._timer.active = running
        self.box.clear()
        with self.box:
            if not self.items:
                ui.label("No collections yet.")
            for item in self.items:
                self._card(item)
        for callback in self.on_change:
            callback(self.items)

    def _card(self, item: dict[str, Any]) -> None:
        with ui.card().classes("w-full").props(f'data-collection="{item["name"]}"'):
            with ui.row().classes("items-center w-full"):
                ui.label(item["name"]).classes("font-bold")
                ui.label(
                    f"{item['documents']} documents · {item['chunks']} chunks · "
                    f"version {item['version']}"
                    + (f" · embeddings: {m}" if (m := item["embedding_model"]) else "")
                ).props("data-collection-counts")
                ui.space()
                ui.button("Delete", on_click=lambda i=item: self._delete(i["id"])).props(
                    "flat dense color=negative"
                )
            job = item.get("indexing")
            if job is not None and job["status"] == "running":
                progress = job["progress"]
                total = progress.get("total") or 1
                ui.linear_progress(value=progress.get("done", 0) / total, show_value=False)
            ui.label(progress_text(item)).classes("text-sm text-gray-600").props(
                "data-collection-progress"
            )
            for error in ((job or {}).get("progress") or {}).get("errors", []):
                ui.label(f"failed: {error['source']}: {error['error']}").classes(
                    "text-sm text-red-700"
                )
            with ui.row().classes("items-end w-full"):
                glob = ui.input("workspace glob", placeholder="docs/*.md").classes("w-96").props(
                    "data-collection-glob"
                )
                added_error = ui.label("").classes("text-red-700 text-sm")

                async def add(collection_id: str = item["id"]) -> None:
                    try:
                        await self.api.post(
                            f"/api/collections/{collection_id}/documents", {"paths": [glob.value]}
                        )
                    except ApiError as exc:
                        added_error.set_text(exc.detail)
                        return
                    await self.refresh()

                ui.button("Add files", on_click=add).props("data-collection-add")

    async def _delete(self, collection_id: str) -> None:
        await self.api.call("DELETE", f"/api/collections/{collection_id}")
        await self.refresh()


async def search_box(api: Api, listing: Listing) -> None:
    with ui.card().classes("w-full"):
        ui.label("Search").classes("font-bold")
        with ui.row().classes("items-end w-full"):
            chosen = ui.select(
                [item["name"] for item in listing.items], label="collection"
            ).classes("w-64").props("data-search-collection")
            query = ui.input("query").classes("w-96").props("data-search-query")
            mode = ui.select(MODES, value="default", label="mode").classes("w-32")
            k = ui.number("k", value=5, min=1, max=100).classes("w-20")
        results = ui.column().classes("w-full gap-2").props("data-search-results")

        def names(items: list[dict[str, Any]]) -> None:
            chosen.set_options([item["name"] for item in items], value=chosen.value)

        listing.on_change.append(names)

        async def search() -> None:
            results.clear()
            if not chosen.value or not query.value:
                return
            params: dict[str, Any] = {"q": query.value, "k": int(k.value)}
            if mode.value != "default":
                params["mode"] = mode.value
            collection = next(i for i in listing.items if i["name"] == chosen.value)
            try:
                found = await api.get(f"/api/collections/{collection['id']}/search", **params)
            except ApiError as exc:
                with results:
                    ui.label(exc.detail).classes("text-red-700")
                return
            with results:
                if not found["results"]:
                    ui.label("Nothing found.")
                for number, hit in enumerate(found["results"], start=1):
                    with ui.card().classes("w-full").props("data-search-hit"):
                        ui.label(
                            f"[{number}] {hit['source']} · chunk {hit['chunk']} · "
                            f"score {hit['score']:.3f}"
                        ).classes("text-sm font-bold")
                        ui.label(hit["text"]).classes("whitespace-pre-wrap text-sm")

        query.on("keydown.enter", search)
        ui.button("Search", on_click=search).props("data-search-button")
