"""The pages that need no real browser, through NiceGUI's simulated `User` against the real API of
the session's server: the workflows list (create, delete), agents (create, edit, delete), workspace
files (view, delete), and a server that cannot be reached, before or after a page loaded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import Client, ui
from nicegui.storage import Storage
from nicegui.testing import User, user_simulation

from tests.support.network import free_port

MAIN = Path(__file__).with_name("pages_main.py")
RETRIES = 50  # 0.1 s apart: each step waits for a real API


@pytest.fixture
async def user(
    base_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[User]:
    monkeypatch.setenv("NODELOOM_TEST_API", base_url)
    monkeypatch.setattr(Storage, "path", tmp_path)
    async with user_simulation(main_file=MAIN) as simulated:
        yield simulated
        for client in list(Client.instances.values()):
            client.delete()  # each page closes its API client then
        await asyncio.sleep(0.2)


@pytest.fixture
async def api(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[Any]]) -> Any:
    for _ in range(RETRIES):
        if value := await check():
            return value
        await asyncio.sleep(0.1)
    pytest.fail(f"never true: {check}")


async def items(api: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/{kind}", params={"limit": 200})).json()["items"])


async def test_the_workflows_list_creates_and_deletes(user: User, api: httpx.AsyncClient) -> None:
    before = {w["id"] for w in await items(api, "workflows")}
    await user.open("/")
    user.find(kind=ui.button, content="New").click()
    await user.should_see("Auto-layout", retries=RETRIES)  # the new workflow's editor
    (created,) = [w for w in await items(api, "workflows") if w["id"] not in before]
    assert created["name"] == "Untitled"

    await user.open("/")
    await user.should_see(marker=f"delete-{created['id']}", retries=RETRIES)
    user.find(marker=f"delete-{created['id']}").click()
    await user.should_not_see(marker=f"delete-{created['id']}", retries=RETRIES)
    assert (await api.get(f"/api/workflows/{created['id']}")).status_code == 404


async def test_an_agent_is_created_edited_and_deleted(user: User, api: httpx.AsyncClient) -> None:
    async def named(name: str) -> list[dict[str, Any]]:
        return [a for a in await items(api, "agents") if a["config"]["name"] == name]

    await user.open("/agents")
    user.find(kind=ui.button, content="New agent").click()
    user.find(marker="agent-name").type("Simulated")
    # Chosen on the element itself: the option's text also appears in the list of agents that
    # other tests saved on this server, which a search by content would find as well.
    (model,) = user.find(marker="agent-model").elements
    model.value = "gemma-3-270m"
    user.find(kind=ui.button, content="Save agent").click()
    (agent,) = await eventually(lambda: named("Simulated"))
    assert agent["config"]["model"] == "gemma-3-270m"
    await user.should_see(marker=f"edit-{agent['id']}", retries=RETRIES)

    user.find(marker=f"edit-{agent['id']}").click()
    user.find(marker="agent-name").clear().type("Renamed")
    user.find(kind=ui.button, content="Save agent").click()
    await eventually(lambda: named("Renamed"))

    user.find(marker=f"delete-{agent['id']}").click()
    await user.should_not_see(marker=f"delete-{agent['id']}", retries=RETRIES)
    assert not await named("Renamed")


async def test_a_workspace_file_is_viewed_and_deleted(user: User, api: httpx.AsyncClient) -> None:
    put = await api.put("/api/files/simulated.txt", content=b"from the simulation\n",
                        headers={"Content-Type": "application/octet-stream"})
    assert put.status_code in (200, 201), put.text
    await user.open("/files")
    user.find(kind=ui.button, content="simulated.txt").click()
    await user.should_see("from the simulation", retries=RETRIES)
    user.find(kind=ui.button, content="Close").click()
    user.find(marker="delete-simulated.txt").click()
    await user.should_not_see(marker="delete-simulated.txt", retries=RETRIES)
    assert (await api.get("/api/files/simulated.txt")).status_code == 404


async def test_an_unreachable_server_is_said_so(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_TEST_API", f"http://127.0.0.1:{free_port()}")
    await user.open("/agents")
    await user.should_see("cannot be reached", retries=RETRIES)


async def test_losing_the_server_after_the_page_loaded_is_a_notice(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    await user.open("/")
    await user.should_see(kind=ui.button, content="New", retries=RETRIES)

    async def unreachable(*args: Any, **kwargs: Any) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(httpx.AsyncClient, "request", unreachable)  # the server went away
    user.find(kind=ui.button, content="New").click()

    async def noticed() -> bool:
        return user.notify.contains("cannot be reached")

    await eventually(noticed)
    await user.should_see(kind=ui.button, content="New")  # the page stays as it was
