"""Fixtures for the API tests: an app over a fresh database (SQLite or PostgreSQL), a test
client, and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.config import ServerConfig
from tests.api.nodes import api_test_registry

# A registry without llama_cpp models: only a server model whose key is not set.
MODELS_TOML = """
[models.remote]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "default"
api_key_env = "NODELOOM_TEST_UNSET_KEY"
"""

GREETING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Greeting",
    "nodes": [
        {
            "id": "name",
            "type": "input",
            "params": {"name": "name", "schema": {"type": "string"}, "default": "world"},
        },
        {"id": "greet", "type": "template", "params": {"template": "Hello, {{ name }}!"}},
        {"id": "greeting", "type": "output", "params": {"name": "greeting"}},
    ],
    "edges": [
        {"from": "name.value", "to": "greet.name"},
        {"from": "greet.text", "to": "greeting.value"},
    ],
}


def make_config(tmp_path: Path, database_url: str, **options: Any) -> ServerConfig:
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / "models.toml").write_text(MODELS_TOML)
    return ServerConfig(
        database_url=database_url,
        workspace=tmp_path / "workspace",
        models_dir=models,
        lease_timeout_s=5,
        **options,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/api.db"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Litestar:
    """The app over SQLite and over PostgreSQL (tests using it run on both)."""
    return create_app(make_config(tmp_path, database_url), registry=api_test_registry())


@pytest.fixture
def sqlite_app(tmp_path: Path, sqlite_url: str) -> Litestar:
    return create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def lite(sqlite_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of the app over SQLite only, for what does not depend on the database."""
    async with AsyncTestClient(app=sqlite_app) as test_client:
        yield test_client


async def saved(client: AsyncTestClient[Litestar], document: dict[str, Any] | None = None) -> str:
    response = await client.post("/api/workflows", json=document or GREETING)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """uvicorn serving an app in a thread of its own (its own event loop)."""

    def __init__(self, app: Litestar, database_url: str = "") -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server over SQLite, shared by the tests of a module."""
    root = tmp_path_factory.mktemp("live")
    url = f"sqlite+aiosqlite:///{root}/live.db"
    config = make_config(root, url)
    with LiveServer(create_app(config, registry=api_test_registry()), url) as server:
        yield server
