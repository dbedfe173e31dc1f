"""What nodeloom is configured with (SPEC §10), as one value: `Settings`. The engine is handed
it (or the parts it needs); it never reads the environment itself. `server/settings.py` reads
the environment and the command line into one, at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.errors import NodeloomError

__all__ = [
    "EXECUTION_MODES",
    "MAX_BODY_BYTES",
    "MAX_ITEMS",
    "Execution",
    "SettingInvalid",
    "Settings",
    "owner_workspace",
    "parse_execution",
    "parse_lease_timeout",
    "parse_max_body_bytes",
    "parse_max_items",
]

Execution = Literal["in-process", "workers"]
EXECUTION_MODES: tuple[Execution, ...] = ("in-process", "workers")
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_ITEMS = 10_000


class SettingInvalid(NodeloomError, ValueError):
    """A setting holds a value nodeloom cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process is configured with (each field: the variable it comes from)."""

    # NODELOOM_DATABASE_URL; None: SQLite in ./.nodeloom/
    database_url: str | None = None
    # NODELOOM_WORKSPACE: the folder file nodes may read and write
    workspace: Path = field(default_factory=lambda: Path("workspace"))
    # NODELOOM_MODELS_DIR: models.toml and the model files
    models_dir: Path = field(default_factory=lambda: Path("models"))
    # NODELOOM_MODEL_MEMORY_BUDGET, in bytes; None: half the machine's memory
    model_memory_budget: int | None = None
    # NODELOOM_LEASE_TIMEOUT_S: seconds without a heartbeat before a run counts as abandoned
    lease_timeout_s: float = 30.0
    # NODELOOM_MAX_BODY_BYTES: the largest request body the API accepts
    max_body_bytes: int = MAX_BODY_BYTES
    # NODELOOM_EXECUTION: where runs execute, in the server's process or on `nodeloom worker`s
    execution: Execution = "in-process"
    # NODELOOM_MAP_MAX_ITEMS: the most items (or instances) one body node may run
    map_max_items: int = MAX_ITEMS


def owner_workspace(root: Path, owner_id: str | None) -> Path:
    """Where a run's file nodes read and write: a user's runs only in ``users/<id>/`` of the
    workspace ``root`` (the folder their files live in through the API), made when missing;
    runs without an owner in the whole folder."""
    if owner_id is None:
        return root
    folder = root / "users" / owner_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def parse_lease_timeout(raw: str, name: str = "NODELOOM_LEASE_TIMEOUT_S") -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SettingInvalid(f"{name} must be a positive number of seconds, got {raw!r}")
    return seconds


def parse_max_body_bytes(raw: str, name: str = "NODELOOM_MAX_BODY_BYTES") -> int:
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size < 1:
        raise SettingInvalid(f"{name} must be a positive whole number, got {raw!r}")
    return size


def parse_max_items(raw: str, name: str = "NODELOOM_MAP_MAX_ITEMS") -> int:
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise SettingInvalid(f"{name} must be a positive whole number, got {raw!r}")
    return count


def parse_execution(raw: str, name: str = "NODELOOM_EXECUTION") -> Execution:
    for mode in EXECUTION_MODES:
        if raw == mode:
            return mode
    raise SettingInvalid(f"{name} must be in-process or workers, got {raw!r}")
