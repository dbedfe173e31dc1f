"""Naming the process that executes a run, and telling whether it still runs: how a run left
``running`` by a process that died is found."""

from __future__ import annotations

import os
import secrets
import socket


def process_name() -> str:
    """``host:pid:random``: unique even when a pid is used again."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def process_alive(owner: str | None) -> bool:
    """Whether the process named ``host:pid:…`` still runs (unknown hosts count as alive)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True
