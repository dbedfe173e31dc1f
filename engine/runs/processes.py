"""Naming the process that executes a run, telling whether it still runs, and its heartbeat:
how a run left ``running`` by a process that died is found and marked ``interrupted``."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from engine.storage.keys import now

if TYPE_CHECKING:
    from engine.storage.repository import Store

__all__ = ["QUEUE_OWNER", "heartbeat", "interrupt_orphans", "process_alive", "process_name"]

log = structlog.get_logger("nodeloom.runs")

QUEUE_OWNER = "queue"  # runs.owner_process of the runs `nodeloom worker`s execute


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


async def interrupt_orphans(store: Store, process: str, lease_timeout_s: float) -> list[str]:
    """Mark runs whose process died (or stopped its heartbeat) as interrupted; ``process``'s
    own runs and runs on workers (which hold leases instead) are left alone."""
    interrupted = []
    stale_before = now() - timedelta(seconds=lease_timeout_s)
    for row in await store.running_rows():
        if row.owner_process in (process, QUEUE_OWNER):
            continue
        gone = not process_alive(row.owner_process)
        stale = row.heartbeat_at is None or row.heartbeat_at < stale_before
        if (gone or stale) and await store.mark_interrupted(row.id, process=row.owner_process):
            interrupted.append(row.id)
            log.warning("run interrupted", run_id=row.id, owner=row.owner_process)
    return interrupted


async def heartbeat(
    store: Store, process: str, runs: Collection[str], lease_timeout_s: float
) -> None:
    """Keep the heartbeat of ``runs`` (a live collection: the runs executing here) fresh
    while there are any, three times per lease."""
    interval = max(lease_timeout_s / 3, 0.05)
    while runs:
        await asyncio.sleep(interval)
        try:
            await store.heartbeat(list(runs), process)
        except Exception:
            log.exception("heartbeat failed")
