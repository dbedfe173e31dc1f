"""Reading the settings (SPEC §10) from the environment, with command-line options on top: the
one place a process reads them, at start-up; the engine is handed the result."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from engine.models.memory import memory_budget
from engine.models.registry import models_dir
from engine.settings import (
    MAX_BODY_BYTES,
    MAX_ITEMS,
    Execution,
    Settings,
    parse_execution,
    parse_lease_timeout,
    parse_max_body_bytes,
    parse_max_items,
)

__all__ = ["DATABASE_URL_ENV", "read_settings"]

DATABASE_URL_ENV = "NODELOOM_DATABASE_URL"


def read_settings(
    environ: Mapping[str, str] | None = None,
    *,
    database_url: str | None = None,
    workspace: Path | None = None,
    execution: Execution | None = None,
    lease_timeout_s: float | None = None,
) -> Settings:
    """The settings from ``environ`` (default: this process's environment), the options given
    winning; a bad value raises `SettingInvalid` (or `ModelConfigInvalid`) naming it."""
    env = os.environ if environ is None else environ

    def given(name: str) -> str:
        return env.get(name, "").strip()

    lease = given("NODELOOM_LEASE_TIMEOUT_S")
    body = given("NODELOOM_MAX_BODY_BYTES")
    mode = given("NODELOOM_EXECUTION")
    items = given("NODELOOM_MAP_MAX_ITEMS")
    return Settings(
        database_url=database_url or given(DATABASE_URL_ENV) or None,
        workspace=workspace or Path(given("NODELOOM_WORKSPACE") or "workspace"),
        models_dir=models_dir(env),
        model_memory_budget=memory_budget(env) if given("NODELOOM_MODEL_MEMORY_BUDGET") else None,
        lease_timeout_s=lease_timeout_s or (parse_lease_timeout(lease) if lease else 30.0),
        max_body_bytes=parse_max_body_bytes(body) if body else MAX_BODY_BYTES,
        execution=execution or (parse_execution(mode) if mode else "in-process"),
        map_max_items=parse_max_items(items) if items else MAX_ITEMS,
    )
