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
