"""What the server is started with: from `nodeloom serve` options and the environment (SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.settings import MAX_BODY_BYTES, MAX_ITEMS, Execution
from server.settings import read_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True, slots=True)
class ServerConfig:
    # None: ``NODELOOM_DATABASE_URL``, else SQLite in ``./.nodeloom/``.
    database_url: str | None = None
    workspace: Path = field(default_factory=lambda: Path("workspace"))
    # None: the server runs without models (validation then accepts any model name).
    models_dir: Path | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_bytes: int = MAX_BODY_BYTES
    lease_timeout_s: float = 30.0
    # None: half the machine's memory.
    model_memory_budget: int | None = None
    # Where runs execute: here, or queued for `nodeloom worker`s (PostgreSQL only).
    execution: Execution = "in-process"
    map_max_items: int = MAX_ITEMS
    # Runs of one batch executing at once.
    batch_parallelism: int = 4
    # The MCP servers whose tools workflows may call; None: $NODELOOM_MCP_CONFIG, else
    # ./mcp.toml (none when that file does not exist).
    mcp_config: Path | None = None

    @classmethod
    def from_env(
        cls,
        *,
        database_url: str | None = None,
        workspace: Path | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        execution: Execution | None = None,
    ) -> ServerConfig:
        """Options given on the command line win over the environment; a bad value raises
        `SettingInvalid` with one clear message."""
        settings = read_settings(
            database_url=database_url, workspace=workspace, execution=execution
        )
        return cls(
            database_url=settings.database_url,
            workspace=settings.workspace,
            models_dir=settings.models_dir,
            host=host,
            port=port,
            max_body_bytes=settings.max_body_bytes,
            lease_timeout_s=settings.lease_timeout_s,
            model_memory_budget=settings.model_memory_budget,
            execution=settings.execution,
            map_max_items=settings.map_max_items,
        )
