"""Settings read from the environment (SPEC §10); a bad value is one clear error."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import NodeloomError


class SettingInvalid(NodeloomError, ValueError):
    """An environment variable holds a value nodeloom cannot use."""


def workspace() -> Path:
    """The folder file nodes may read and write: ``NODELOOM_WORKSPACE``, else ``./workspace``."""
    return Path(os.environ.get("NODELOOM_WORKSPACE") or "workspace")


def lease_timeout_s() -> float:
    """Seconds without a heartbeat before a run counts as abandoned: NODELOOM_LEASE_TIMEOUT_S."""
    raw = os.environ.get("NODELOOM_LEASE_TIMEOUT_S")
    if not raw:
        return 30.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SettingInvalid(
            f"NODELOOM_LEASE_TIMEOUT_S must be a positive number of seconds, got {raw!r}"
        )
    return seconds


MAX_BODY_BYTES = 10 * 1024 * 1024


def max_body_bytes() -> int:
    """The largest request body the API accepts: ``NODELOOM_MAX_BODY_BYTES`` (default 10 MiB)."""
    raw = os.environ.get("NODELOOM_MAX_BODY_BYTES")
    if not raw:
        return MAX_BODY_BYTES
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size < 1:
        raise SettingInvalid(
            f"NODELOOM_MAX_BODY_BYTES must be a positive whole number, got {raw!r}"
        )
    return size


EXECUTION_MODES = ("in-process", "workers")


def execution() -> str:
    """Where runs execute: ``NODELOOM_EXECUTION`` = ``in-process`` (the default) or ``workers``
    (queued for `nodeloom worker` processes; needs PostgreSQL)."""
    raw = os.environ.get("NODELOOM_EXECUTION") or "in-process"
    if raw not in EXECUTION_MODES:
        raise SettingInvalid(f"NODELOOM_EXECUTION must be in-process or workers, got {raw!r}")
    return raw
