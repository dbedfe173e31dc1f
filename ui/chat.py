"""The `/chat` page (SPEC §13): conversations with a model, an agent or a workflow. The answer
streams in as the model writes it (rendered as Markdown) and can be stopped; a question can be
edited and an answer regenerated, each a new branch, and a message with siblings shows which of
them it is ("< 2/3 >") with buttons to the others. Plain calls to `/api/conversations`."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui.client import Api, ApiError

DEFAULT_MAX_TOKENS = 256


async def target_options(api: Api) -> dict[str, str]:
    """What a conversation can talk to: the available models, the agents, the workflows."""
    models = (await api.get("/api/models"))["items"]
    agents = (await api.get("/api/agents", limit=200))["items"]
    workflows = (await api.get("/api/workflows", limit=200))["items"]
    options = {f"model:{m['name']}": f"model · {m['name']}" for m in models if m["available"]}
    options |= {f"agent:{a['id']}": f"agent · {a['config']['name']}" for a in agents}
    options |= {f"workflow:{w['id']}": f"workflow · {w['name']}" for w in workflows}
    return options


def usage_text(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    text = (
        f"{usage.get('total_tokens', 0)} tokens ({usage.get('prompt_tokens', 0)} in, "
        f"{usage.get('completion_tokens', 0)} out)"
    )
    if usage.get("model"):
        text += f" · {usage['model']}"
    if usage.get("cost"):
        text += f" · ${usage['cost']:.6f}"
    return text


class Tree:
    """A conversation's messages as a tree: children in the order they were stored."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.by_id = {m["id"]: m for m in messages}
        self.children: dict[str | None, list[str]] = {}
        for message in messages:
            self.children.setdefault(message["parent_id"], []).append(message["id"])

    def path(self, leaf: str | None) -> list[dict[str, Any]]:
        """The messages from the root down to ``leaf``."""
        path = []
        while leaf is not None and leaf in self.by_id:
            path.append(self.by_id[leaf])
            leaf = self.by_id[leaf]["parent_id"]
        return path[::-1]

    def latest_under(self, message_id: str) -> str:
        """The message stored last in ``message_id``'s subtree (itself if it has none)."""
        inside, latest = {message_id}, message_id
        for message in self.messages:  # a parent is always stored before its children
            if message["parent_id"] in inside:
                inside.add(message["id"])
                latest = message["id"]
        return latest

    def siblings(self, message: dict[str, Any]) -> list[str]:
        return self.children.get(message["parent_id"], [])


class ChatView:
    """One conversation: its thread along the branch shown, and the box to ask in."""

    def __init__(
        self, api: Api, conversation_id: str, on_change: Any, names: dict[str, str]
    ) -> None:
        self.api = api
        self.names = names  # target -> what the picker calls it
        self.id = conversation_id
        self.on_change = on_change
        self.tree = Tree([])
        self.leaf: str | None = None
        self.run_id: str | None = None
        self.chunks: dict[str, int] = {}  # token frames the page received, per answer

    async def build(self) -> None:
        detail = await self.api.get(f"/api/conversations/{self.id}")
        with ui.row().classes("items-center w-full gap-3"):
            self.title = (
                ui.label(detail["title"] or "New conversation")
                .classes("text-xl font-bold")
                .props("data-chat-title")
            )
            ui.label(self.names.get(detail["target"], detail["target"])).classes(
                "text-gray-500 text-sm").props(f'data-chat-talks-to="{detail["target"]}"')
            ui.space()
            self.total = ui.label("").classes("text-sm text-gray-500").props("data-chat-usage")
        self.thread = ui.column().classes("w-full gap-2").props("data-chat-thread")
        with ui.row().classes("w-full items-end gap-2 no-wrap"):
            self.input = (
                ui.textarea(placeholder="Ask…")
                .classes("grow")
                .props("autogrow outlined data-chat-input")
            )
            with ui.column().classes("gap-1"):
                self.send_button = ui.button("Send", on_click=self.ask).props("data-chat-send")
                self.stop_button = ui.button("Stop", on_click=self.stop).props(
                    "color=negative data-chat-stop"
                )
                self.stop_button.set_visibility(False)
        with ui.row().classes("items-center gap-3 text-sm"):
            self.temperature = ui.number("temperature", value=0.7, min=0, max=2, step=0.1)
            self.temperature.classes("w-28").props("dense data-chat-temperature")
            self.max_tokens = ui.number("max tokens", value=DEFAULT_MAX_TOKENS, min=1, step=1)
            self.max_tokens.classes("w-28").props("dense data-chat-max-tokens")
        self.error = ui.label("").classes("text-red-700 text-sm").props("data-chat-error")
        self.show(detail)

    def show(self, detail: dict[str, Any]) -> None:
        self.tree = Tree(detail["messages"])
        if self.leaf not in self.tree.by_id:
            self.leaf = detail["messages"][-1]["id"] if detail["messages"] else None
        self.title.set_text(detail["title"] or "New conversation")
        usage = detail["usage"]
        self.total.set_text(
            f"{usage['total_tokens']} tokens"
            + (f" · ${usage['cost']:.6f}" if usage["cost"] else "")
        )
        self.render()

    def render(self) -> None:
        self.thread.clear()
        with self.thread:
            for message in self.tree.path(self.leaf):
                self.bubble(message)

    def bubble(self, message: dict[str, Any]) -> None:
        mine = message["role"] == "user"
        chunks = self.chunks.get(message["id"])
        props = f'data-message="{message["id"]}" data-role="{message["role"]}"'
        if chunks is not None:
            props += f' data-chunks="{chunks}"'
        with ui.card().classes("w-full " + ("bg-slate-100" if mine else "")).props(props) as card:
            ui.markdown(message["content"]).classes("w-full").props("data-message-text")
            with ui.row().classes("items-center gap-2 text-xs text-gray-500"):
                self.branches(message)
                if message["usage"]:
                    ui.label(usage_text(message["usage"])).props("data-message-usage")
                if message["run_id"]:
                    ui.link("run", f"/runs/{message['run_id']}").classes("text-xs")
                ui.space()
                small, asked = "flat dense no-caps size=sm", message["id"]
                if mine:
                    ui.button("Edit", on_click=lambda: self.edit(card, message)).props(
                        f"{small} data-message-edit"
                    )
                    if not self.tree.children.get(message["id"]):  # its answer failed
                        answer = ui.button("Answer", on_click=lambda: self.regenerate(asked))
                        answer.props(f"{small} data-message-answer")
                else:
                    question = message["parent_id"]
                    again = ui.button("Regenerate", on_click=lambda: self.regenerate(question))
                    again.props(f"{small} data-message-regenerate")

    def branches(self, message: dict[str, Any]) -> None:
        siblings = self.tree.siblings(message)
        if len(siblings) < 2:
            return
        at = siblings.index(message["id"])

        def go(step: int) -> None:
            self.leaf = self.tree.latest_under(siblings[(at + step) % len(siblings)])
            self.render()

        ui.button("<", on_click=lambda: go(-1)).props("flat dense size=sm data-branch-prev")
        ui.label(f"{at + 1}/{len(siblings)}").props(f'data-branch="{at + 1}/{len(siblings)}"')
        ui.button(">", on_click=lambda: go(1)).props("flat dense size=sm data-branch-next")

    def edit(self, card: ui.card, message: dict[str, Any]) -> None:
        card.clear()
        with card:
            box = (
                ui.textarea(value=message["content"])
                .classes("w-full")
                .props("autogrow outlined data-edit-input")
            )
            with ui.row().classes("gap-2"):
                ui.button("Send as a new branch",
                          on_click=lambda: self.send(box.value, message["parent_id"])
                          ).props("no-caps data-edit-send")  # fmt: skip
                ui.button("Cancel", on_click=self.render).props("flat no-caps")

    async def ask(self) -> None:
        text = self.input.value or ""
        if not text.strip():
            self.error.set_text("Write a question first.")
            return
        self.input.set_value("")
        await self.send(text, self.leaf)

    async def regenerate(self, question_id: str) -> None:
        await self.send(None, question_id)

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.temperature.value is not None:
            options["temperature"] = float(self.temperature.value)
        if self.max_tokens.value:
            options["max_tokens"] = int(self.max_tokens.value)
        return options

    async def send(self, content: str | None, parent_id: str | None) -> None:
        """Ask ``content`` after ``parent_id`` (None: as a first question), or, with no
        content, answer the question ``parent_id`` again; the answer streams in."""
        body: dict[str, Any] = {"parent_id": parent_id, "stream": True, "options": self.options()}
        if content is not None:
            body["content"] = content
        self.error.set_text("")
        self.leaf = parent_id
        self.render()
        with self.thread:
            if content is not None:
                with ui.card().classes("w-full bg-slate-100").props("data-pending-question"):
                    ui.markdown(content)
            with ui.card().classes("w-full").props("data-streaming"):
                answer = ui.markdown("…").classes("w-full").props("data-streaming-text")
        self.busy(True)
        text, chunks, stored = "", 0, None
        try:
            async for event, data in self.api.stream(
                f"/api/conversations/{self.id}/messages", body
            ):
                if event == "start":
                    self.run_id = data["run_id"]
                    self.leaf = data["question"]["id"]
                elif event == "token":
                    text += data["text"]
                    chunks += 1
                    answer.set_content(text)
                elif event == "message":
                    stored = data
                elif event == "error":
                    self.error.set_text(data["detail"])
        except ApiError as exc:
            self.error.set_text(exc.detail)
        finally:
            self.busy(False)
            self.run_id = None
        if stored is not None:
            self.chunks[stored["id"]] = chunks
            self.leaf = stored["id"]
        self.show(await self.api.get(f"/api/conversations/{self.id}"))
        await self.on_change()

    async def stop(self) -> None:
        if self.run_id is not None:
            try:
                await self.api.post(f"/api/runs/{self.run_id}/cancel")
            except ApiError as exc:  # it ended meanwhile
                self.error.set_text(exc.detail)

    def busy(self, answering: bool) -> None:
        self.send_button.set_enabled(not answering)
        self.stop_button.set_visibility(answering)


async def chat_page(api: Api, conversation_id: str | None) -> None:
    targets = await target_options(api)
    with ui.row().classes("w-full no-wrap p-4 gap-4 items-start"):
        with ui.column().classes("w-72 gap-2 shrink-0"):
            with ui.card().classes("w-full"):
                ui.label("New chat").classes("font-bold")
                target = ui.select(targets, label="talk to",
                                   value=next(iter(targets), None)).classes("w-full").props(
                    "data-chat-target")  # fmt: skip
                title = ui.input("title (optional)").classes("w-full").props("data-chat-new-title")
                problem = ui.label("").classes("text-red-700 text-sm")

                async def start() -> None:
                    body = {"target": target.value or ""}
                    if (title.value or "").strip():
                        body["title"] = title.value
                    try:
                        created = await api.post("/api/conversations", body)
                    except ApiError as exc:
                        problem.set_text(exc.detail)
                        return
                    ui.navigate.to(f"/chat/{created['id']}")

                ui.button("Start", on_click=start).props("data-chat-new")
            listing = ui.column().classes("w-full gap-0").props("data-chat-list")
        main = ui.column().classes("grow min-w-0 gap-2 max-w-4xl")

    async def show_list() -> None:
        items = (await api.get("/api/conversations", limit=100))["items"]
        listing.clear()
        with listing:
            if not items:
                ui.label("No conversations yet.").classes("text-sm text-gray-500")
            for item in items:
                chosen = "font-bold" if item["id"] == conversation_id else ""
                with (
                    ui.row()
                    .classes("items-center w-full no-wrap")
                    .props(f'data-conversation="{item["id"]}"')
                ):
                    ui.link(item["title"] or "New conversation", f"/chat/{item['id']}").classes(
                        f"grow truncate {chosen}"
                    )
                    ui.button("✕", on_click=lambda _, i=item["id"]: remove(i)).props(
                        "flat dense size=sm color=negative data-conversation-delete"
                    )

    async def remove(item_id: str) -> None:
        await api.call("DELETE", f"/api/conversations/{item_id}")
        if item_id == conversation_id:
            ui.navigate.to("/chat")
            return
        await show_list()

    await show_list()
    with main:
        if conversation_id is None:
            ui.label("Pick a conversation, or start a new one.").classes("text-gray-500")
        else:
            await ChatView(api, conversation_id, show_list, targets).build()
