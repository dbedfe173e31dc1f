"""What `nodeloom serve` runs: the REST API and the canvas on one port."""

from __future__ import annotations

from engine.nodes.registry import NodeRegistry
from server.app import create_app
from server.asgi import Combined
from server.config import ServerConfig


def create_web_app(config: ServerConfig, *, registry: NodeRegistry | None = None) -> Combined:
    """The API (`/api`, `/v1`) and the canvas (everything else); the canvas calls the API over
    loopback HTTP like any other client."""
    from ui.app import create_gui  # noqa: PLC0415 - NiceGUI is only imported when serving

    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "localhost") else config.host  # noqa: S104
    base_url = (
        f"http://{host}:{config.port}" if ":" not in host else f"http://[{host}]:{config.port}"
    )
    return Combined(create_app(config, registry=registry), create_gui(lambda: base_url))
