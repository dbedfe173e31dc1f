"""Workers killed or frozen mid-node: their nodes are taken over after the lease, every node is
committed exactly once, and a frozen worker's late results are rejected."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

from sqlalchemy import text

from engine.execution.events import NodeCompleted, decode_event
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.documents import workflow
from tests.support.workers import LEASE_S, WorkerProcess, fan_out, live_jobs_after_draining

WIDTH = 40


async def held_by(database: Database, run_id: str, worker: WorkerProcess) -> set[str]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT node_id FROM node_executions WHERE run_id = :run "
                "AND status = 'running' AND worker LIKE :suffix"
            ),
            {"run": run_id, "suffix": f"%{worker.name_suffix}"},
        )
        return {node_id for (node_id,) in rows}


async def wait_holding(database: Database, run_id: str, worker: WorkerProcess) -> set[str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        held = await held_by(database, run_id, worker)
        if len(held) >= 3:
            return held
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker never held nodes:\n{worker.output()}")


async def check_exactly_once(database: Database, run_id: str) -> dict[str, Any]:
    """Every node has one committed result and one completion event; the queue is empty.
    Returns each node's committed attempt and worker."""
    async with database.engine.connect() as connection:
        results = dict(
            (
                await connection.execute(
                    text("SELECT node_id, attempt FROM node_results WHERE run_id = :run"),
                    {"run": run_id},
                )
            ).all()
        )
        workers = dict(
            (
                await connection.execute(
                    text("SELECT node_id, worker FROM node_executions WHERE run_id = :run"),
                    {"run": run_id},
                )
            ).all()
        )
        events = [
            decode_event(data.encode())
            for (data,) in await connection.execute(
                text("SELECT data FROM events WHERE run_id = :run ORDER BY seq"), {"run": run_id}
            )
        ]
    assert len(results) == WIDTH + 3
    completed = Counter(e.node for e in events if isinstance(e, NodeCompleted))
    assert set(completed) == set(results)
    assert set(completed.values()) == {1}, completed
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert await live_jobs_after_draining(database) == 0
    return {node: (attempt, workers[node]) for node, attempt in results.items()}


async def test_a_killed_workers_nodes_rerun_as_attempt_2(
    workers: Any, database: Database, queued: RunService
) -> None:
    pool = workers(3, "--concurrency", "16")
    victim = pool[0]
    nodes, edges = fan_out(WIDTH, 1.0)
    started = time.monotonic()
    active = await queued.start(workflow(nodes, edges))
    held = await wait_holding(database, active.id, victim)
    victim.signal(signal.SIGKILL)
    record = await asyncio.wait_for(active.wait(), 45)
    assert record.status == "succeeded", record.error
    assert record.outputs == {"result": ["R"] * WIDTH}
    committed = await check_exactly_once(database, active.id)
    # The victim held at least the nodes seen before the kill (it may have taken a few more).
    # Attempt 2 (or more, should a busy machine also delay the next holder's heartbeat).
    rerun = {node for node, (attempt, _) in committed.items() if attempt >= 2}
    assert held <= rerun
    for node in rerun:
        assert not committed[node][1].endswith(victim.name_suffix)
    assert time.monotonic() - started < 30


async def test_a_frozen_workers_late_results_are_rejected(
    workers: Any, database: Database, queued: RunService
) -> None:
    pool = workers(3, "--concurrency", "16")
    frozen = pool[0]
    nodes, edges = fan_out(WIDTH, 1.0)
    active = await queued.start(workflow(nodes, edges))
    held = await wait_holding(database, active.id, frozen)
    frozen.signal(signal.SIGSTOP)
    try:
        record = await asyncio.wait_for(active.wait(), 45)
    except TimeoutError:
        async with database.engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT node_id, status, attempt, worker FROM node_executions")
            )
            states = [tuple(row) for row in rows if row.status != "done"]
            activity = [
                tuple(row)
                for row in await connection.execute(
                    text(
                        "SELECT pid, state, wait_event, pg_blocking_pids(pid), "
                        "left(query, 70) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state <> 'idle'"
                    )
                )
            ]
            states.append(("ACTIVITY", activity))
        logs = "\n".join(worker.output()[-3000:] for worker in pool)
        raise AssertionError(f"run stuck: {states}\n{logs}") from None
    assert record.status == "succeeded", record.error
    frozen.signal(signal.SIGCONT)  # its nodes' sleeps are over: it reports them now
    # Each late result is rejected by the fencing check (or, had the worker frozen inside a
    # transaction, PostgreSQL ended that session after the lease and nothing was written).
    deadline = time.monotonic() + 15
    while _late_reports(frozen) < len(held) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    assert _late_reports(frozen) >= len(held), frozen.output()
    assert "result rejected" in frozen.output()
    committed = await check_exactly_once(database, active.id)
    for node in held:
        attempt, worker = committed[node]
        assert attempt >= 2  # 2, or more if a busy machine delayed the next lease holder too
        assert not worker.endswith(frozen.name_suffix)
    assert LEASE_S < 3


def _late_reports(worker: WorkerProcess) -> int:
    output = worker.output()
    return output.count("result rejected") + output.count("result not committed")
