"""Ends the database sessions of workers that stopped in the middle of a statement.

A worker frozen (SIGSTOP, a stalled VM) after the server ran its statement but before it sent the
protocol's closing message leaves its session `active`, not idle: PostgreSQL's
`idle_in_transaction_session_timeout` never fires, and the row locks it holds (a run's counters,
node executions) stall every other worker. Any live worker ends such a session once it has kept
others waiting longer than the lease. The frozen worker's results are then lost with its
transaction, and fencing rejects whatever it reports when it wakes up."""

from __future__ import annotations

from sqlalchemy import text

from engine.storage.database import Database

__all__ = ["APPLICATION_PREFIX", "application_name", "end_stalled_sessions"]

APPLICATION_PREFIX = "nodeloom-worker "

_END_BLOCKERS = text(
    """
    SELECT pg_terminate_backend(blocker.pid)
    FROM pg_stat_activity AS blocker
    WHERE blocker.datname = current_database()
      AND blocker.application_name LIKE :prefix
      AND blocker.application_name <> :me
      AND blocker.xact_start < now() - make_interval(secs => :lease)
      AND blocker.wait_event_type IS DISTINCT FROM 'Lock'  -- the head of a chain of waiters
      AND EXISTS (
        SELECT 1 FROM pg_stat_activity AS waiter
        WHERE blocker.pid = ANY(pg_blocking_pids(waiter.pid))
          AND waiter.wait_event_type = 'Lock'
          AND waiter.state_change < now() - make_interval(secs => :lease)
      )
    """
)


def application_name(worker: str) -> str:
    """How a worker's sessions are named in `pg_stat_activity` (63 characters at most)."""
    return (APPLICATION_PREFIX + worker)[:63]


async def end_stalled_sessions(database: Database, worker: str, lease_timeout_s: float) -> int:
    """End other workers' sessions that have blocked someone for longer than the lease; the
    number ended."""
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            _END_BLOCKERS,
            {
                "prefix": APPLICATION_PREFIX + "%",
                "me": application_name(worker),
                "lease": lease_timeout_s,
            },
        )
        ended = sum(1 for (done,) in rows if done)
        await connection.commit()
    return ended
