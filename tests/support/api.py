"""The API tests' helpers: a server configuration over a fresh database, the greeting workflow
and saving it, a real uvicorn server in a thread, and Server-Sent Events parsed."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.config import ServerConfig
from tests.support.network import free_port

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


async def saved(client: AsyncTestClient[Litestar], document: dict[str, Any] | None = None) -> str:
    response = await client.post("/api/workflows", json=document or GREETING)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


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


def parse(stream: str) -> list[dict[str, Any]]:
    """SSE frames as dicts of their fields (data decoded from JSON)."""
    frames = []
    for block in stream.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event", "data"):
                fields[name] = json.loads(value) if name == "data" else value
        if "data" in fields:
            frames.append(fields)
    return frames
