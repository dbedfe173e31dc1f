"""The SQL of the scheduler's transactions, written for asyncpg (``$n`` parameters).

Each statement does as much as it can in one round trip: a worker commits a few transactions per
node, and the round trips are most of what a short node costs.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql

from engine.storage.result_rows import JSON_COLUMNS, NODE_RESULTS, RESULT_COLUMNS, placeholders

__all__ = [
    "ADVANCE",
    "CANCEL_RUN",
    "CLOSE_NODES",
    "CLOSE_RUN",
    "EVENTS_CHANNEL",
    "FINISH_RUN",
    "FORGET_BODIES",
    "GO_ON_RUN",
    "INSERT_EVENTS",
    "INSERT_NODES",
    "INSERT_RUN",
    "LOOK",
    "NOTIFY",
    "PARKED_NODES",
    "PARK_NODE",
    "PAUSE_RUN",
    "SETTLE",
    "TAKE",
    "UNPARK_NODE",
    "WAIT_RUN",
]


def _pg_type(name: str) -> str:
    """The PostgreSQL type of a node_results column."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(NODE_RESULTS.c[name].type.compile(dialect=dialect))


# NOTIFY payload: the run id whose events were committed (the statements below spell it out).
EVENTS_CHANNEL = "nodeloom_events"

# The node's execution row with its run's cancel flag (kind `node`), then the committed results
# of the nodes $3 (kind `result`), their JSON as text.
_RESULT_ONLY = [name for name in RESULT_COLUMNS if name not in ("status", "attempt")]
_NO_RESULT = ", ".join(
    f"NULL::{'text' if name in JSON_COLUMNS else _pg_type(name)} AS {name}" for name in _RESULT_ONLY
)
_A_RESULT = ", ".join(
    f"r.{name}::text" if name in JSON_COLUMNS else f"r.{name}" for name in _RESULT_ONLY
)
LOOK = f"""
    SELECT 'node' AS kind, n.status, n.attempt, d.cancel_requested, {_NO_RESULT}
    FROM node_executions AS n JOIN dispatched_runs AS d ON d.run_id = n.run_id
    WHERE n.run_id = $1 AND n.node_id = $2
    UNION ALL
    SELECT 'result', r.status, r.attempt, NULL, {_A_RESULT}
    FROM node_results AS r WHERE r.run_id = $1 AND r.node_id = ANY($3::text[])
"""  # noqa: S608 - column names only

# Taking a node, in one statement (its locks last no longer than the statement): its attempt
# goes up only from the expected one $3 (the fencing token); the events ($5 types, $6/$7 their
# JSON before/after the sequence number) are numbered after the run's last one and stored, but
# those flagged in $8 only when the run is not being cancelled; the run is marked running when
# this is its first node taken.
# Its commit does not wait for the disk (`synchronous_commit` off for this transaction), so the
# run's row is not held through a flush: a take lost with a crash of the database is harmless,
# since the node's result, committed durably, is accepted only with the attempt the database
# holds (the worker's later settle of a lost attempt is rejected, and the node runs again).
TAKE = """
    WITH asynchronous AS (
        SELECT set_config('synchronous_commit', 'off', true)
    ), taken AS (
        UPDATE node_executions AS n
        SET attempt = n.attempt + 1, status = 'running', worker = $4, updated_at = now()
        FROM dispatched_runs AS d
        WHERE n.run_id = $1 AND n.node_id = $2 AND n.status IN ('queued', 'running')
          AND n.attempt = $3 AND d.run_id = n.run_id
        RETURNING n.attempt, d.cancel_requested
    ), kept AS (
        SELECT e.type, e.head, e.tail, row_number() OVER (ORDER BY e.n) AS n
        FROM taken AS t,
             unnest($5::text[], $6::text[], $7::text[], $8::bool[])
                 WITH ORDINALITY AS e(type, head, tail, started, n)
        WHERE NOT (e.started AND t.cancel_requested)
    ), advanced AS (
        UPDATE dispatched_runs AS d
        SET last_seq = d.last_seq + (SELECT count(*) FROM kept), started = true
        FROM (SELECT started FROM dispatched_runs WHERE run_id = $1 FOR UPDATE) AS old
        WHERE d.run_id = $1 AND EXISTS (SELECT 1 FROM taken)
        RETURNING d.last_seq - (SELECT count(*) FROM kept) AS base, old.started
    ), stored AS (
        INSERT INTO events (run_id, seq, type, data)
        SELECT $1, a.base + k.n, k.type, k.head || (a.base + k.n) || k.tail
        FROM advanced AS a, kept AS k
    ), marked AS (
        UPDATE runs SET status = 'running', started_at = now()
        WHERE id = $1 AND status = 'queued' AND EXISTS (SELECT 1 FROM advanced WHERE NOT started)
    )
    SELECT t.attempt, t.cancel_requested,
           CASE WHEN EXISTS (SELECT 1 FROM kept) THEN pg_notify('nodeloom_events', $1) END
    FROM taken AS t, asynchronous
"""

# Settling a node in one statement, only while its attempt is still $3: its result row is
# upserted with the values of RESULT_COLUMNS after the run and the node, from $4 on; then come
# the events (three arrays: their types, their JSON before/after the sequence number), the
# successors and the flag below. The successors wait for one predecessor fewer, and those
# waiting for none are queued unless the run is being cancelled (`ready`); the run's counters
# move and the events are numbered and stored, as in ADVANCE. With the flag, the statement
# raises NL001 (nothing is written) when the settle has to do more than this statement can:
# queue ready successors, or finish the run. Without it, the caller does that before
# committing. No rows: the node was taken over or settled already.
_STATE = RESULT_COLUMNS[2:]
_TYPES, _HEADS, _TAILS, _SUCCESSORS, _GUARD = (f"${4 + len(_STATE) + n}" for n in range(5))
SETTLE = f"""
    WITH fenced AS (
        UPDATE node_executions AS n
        SET status = 'done', updated_at = now()
        FROM dispatched_runs AS d
        WHERE n.run_id = $1 AND n.node_id = $2 AND n.status IN ('queued', 'running')
          AND n.attempt = $3 AND d.run_id = n.run_id
        RETURNING d.cancel_requested
    ), stored AS (
        INSERT INTO node_results ({", ".join(RESULT_COLUMNS)})
        SELECT $1, $2, {placeholders(4, _STATE)}
        FROM fenced
        ON CONFLICT (run_id, node_id) DO UPDATE SET
            {", ".join(f"{name} = excluded.{name}" for name in _STATE)}
    ), counted AS (
        UPDATE node_executions AS n
        SET waiting_on = n.waiting_on - 1,
            status = CASE WHEN n.waiting_on = 1 AND NOT f.cancel_requested
                          THEN 'queued' ELSE n.status END,
            updated_at = now()
        FROM fenced AS f
        WHERE n.run_id = $1 AND n.node_id = ANY({_SUCCESSORS}::text[])
        RETURNING n.node_id, n.status
    ), ready AS (
        SELECT coalesce(array_agg(node_id), '{{}}') AS ids FROM counted WHERE status = 'queued'
    ), advanced AS (
        UPDATE dispatched_runs AS d
        SET remaining = d.remaining - 1,
            in_flight = d.in_flight - 1 + cardinality((SELECT ids FROM ready)),
            last_seq = d.last_seq + cardinality({_TYPES}::text[])
        FROM (SELECT started FROM dispatched_runs WHERE run_id = $1 FOR UPDATE) AS old
        WHERE d.run_id = $1 AND EXISTS (SELECT 1 FROM fenced)
        RETURNING d.remaining, d.in_flight, d.cancel_requested, d.last_seq, old.started
    ), stored_events AS (
        INSERT INTO events (run_id, seq, type, data)
        SELECT $1, a.last_seq - cardinality({_TYPES}::text[]) + e.n, e.type,
               e.head || (a.last_seq - cardinality({_TYPES}::text[]) + e.n) || e.tail
        FROM advanced AS a,
             unnest({_TYPES}::text[], {_HEADS}::text[], {_TAILS}::text[])
                 WITH ORDINALITY AS e(type, head, tail, n)
    )
    SELECT a.remaining, a.in_flight, a.cancel_requested, a.last_seq, a.started,
           r.ids AS ready,
           CASE WHEN cardinality({_TYPES}::text[]) > 0 THEN pg_notify('nodeloom_events', $1) END,
           CASE WHEN {_GUARD} AND (cardinality(r.ids) > 0 OR a.remaining = 0
                              OR a.in_flight = 0)
                THEN nodeloom_settle_needs_transaction() END
    FROM advanced AS a, ready AS r
"""  # noqa: S608 - column names only

# The statement that locks a run's row, the last before the transaction commits, so that
# concurrent changes of one run wait on each other as briefly as possible. It
# - counts down the predecessors the successors ($8) of a settled node wait for, queueing those
#   that wait for none unless the run is being cancelled ($9), and returns them as `ready`;
# - moves the run's counters: $2 nodes settled, $3 more in flight (plus those now ready);
# - numbers the transaction's events after the run's last one and stores them: each event's
#   JSON is given as the text before its sequence number ($6) and after it ($7);
# - notifies the followers of the run's events (delivered at commit).
ADVANCE = """
    WITH counted AS (
        UPDATE node_executions
        SET waiting_on = waiting_on - 1,
            status = CASE WHEN waiting_on = 1 AND NOT $9 THEN 'queued' ELSE status END,
            updated_at = now()
        WHERE run_id = $1 AND node_id = ANY($8::text[])
        RETURNING node_id, status
    ), ready AS (
        SELECT coalesce(array_agg(node_id), '{}') AS ids FROM counted WHERE status = 'queued'
    ), advanced AS (
        UPDATE dispatched_runs AS d
        SET remaining = d.remaining - $2,
            in_flight = d.in_flight + $3 + cardinality((SELECT ids FROM ready)),
            last_seq = d.last_seq + cardinality($5::text[]),
            started = d.started OR $4
        FROM (SELECT started FROM dispatched_runs WHERE run_id = $1 FOR UPDATE) AS old
        WHERE d.run_id = $1
        RETURNING d.remaining, d.in_flight, d.cancel_requested, d.last_seq, old.started
    ), stored AS (
        INSERT INTO events (run_id, seq, type, data)
        SELECT $1, a.last_seq - cardinality($5::text[]) + e.n, e.type,
               e.head || (a.last_seq - cardinality($5::text[]) + e.n) || e.tail
        FROM advanced AS a,
             unnest($5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS e(type, head, tail, n)
    )
    SELECT a.remaining, a.in_flight, a.cancel_requested, a.last_seq, a.started,
           (SELECT ids FROM ready) AS ready,
           CASE WHEN cardinality($5::text[]) > 0 THEN pg_notify('nodeloom_events', $1) END
    FROM advanced AS a
"""

INSERT_EVENTS = """
    INSERT INTO events (run_id, seq, type, data)
    SELECT $1, seq, type, data FROM unnest($2::int[], $3::text[], $4::text[]) AS e(seq, type, data)
"""

NOTIFY = "SELECT pg_notify('nodeloom_events', $1)"

INSERT_NODES = """
    INSERT INTO node_executions (run_id, node_id, status, waiting_on, attempt, worker, updated_at)
    SELECT $1, node_id, status, waiting_on, 0, NULL, now()
    FROM unnest($2::text[], $3::text[], $4::int[]) AS e(node_id, status, waiting_on)
"""

INSERT_RUN = """
    INSERT INTO dispatched_runs
        (run_id, cancel_requested, started, remaining, in_flight, last_seq, reuse_from, force,
         reasons)
    VALUES ($1, false, false, $2, $3, $4, $5, $6::text::json, $7::text::json)
"""

# A run's end: nodes never settled are done now (they are stored as cancelled).
CLOSE_NODES = """
    UPDATE node_executions SET status = 'done', updated_at = now()
    WHERE run_id = $1 AND status <> 'done'
    RETURNING node_id
"""

CLOSE_RUN = """
    UPDATE dispatched_runs SET last_seq = $2, remaining = 0, in_flight = 0 WHERE run_id = $1
"""

FINISH_RUN = """
    UPDATE runs SET status = $2, outputs = $3::text::json, error = $4, finished_at = now(),
        last_seq = $5
    WHERE id = $1
"""

# Nodes that wait for a person's answer (SPEC §16). A node whose code asked is `parked`, only
# while its attempt is still $3: it is in flight no more, yet not settled, and its successors
# wait with it. An answer (or the wait's end) settles it, once: `UNPARK_NODE` answers no row
# when another came first. `PARKED_NODES` locks a run's parked nodes before its row, in the
# order the answer takes them.
PARK_NODE = """
    UPDATE node_executions SET status = 'parked', updated_at = now()
    WHERE run_id = $1 AND node_id = $2 AND status IN ('queued', 'running') AND attempt = $3
    RETURNING node_id
"""
UNPARK_NODE = """
    UPDATE node_executions SET status = 'done', updated_at = now()
    WHERE run_id = $1 AND node_id = $2 AND status = 'parked'
    RETURNING node_id
"""
PARKED_NODES = """
    SELECT node_id FROM node_executions WHERE run_id = $1 AND status = 'parked' FOR UPDATE
"""

# A run with nothing in flight, its nodes left all waiting on parked ones: it waits, holding
# nothing (its `run.finished` event says `waiting`), until an answer goes on with it.
PAUSE_RUN = "UPDATE dispatched_runs SET last_seq = $2 WHERE run_id = $1"
WAIT_RUN = """
    UPDATE runs SET status = 'waiting', outputs = $2::text::json, last_seq = $3 WHERE id = $1
"""
GO_ON_RUN = "UPDATE runs SET status = 'running' WHERE id = $1 AND status = 'waiting'"
CANCEL_RUN = "UPDATE dispatched_runs SET cancel_requested = true WHERE run_id = $1"

# A run's end, or its start again: the runs of its bodies are over (SPEC §12).
FORGET_BODIES = (
    "DELETE FROM body_instances WHERE run_id = $1",
    "DELETE FROM body_runs WHERE run_id = $1",
)
