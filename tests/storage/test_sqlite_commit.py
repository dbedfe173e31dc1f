"""The SQLite statements the result writer writes by hand are what SQLAlchemy compiles from
its statements, for every set of columns it commits; where SQLAlchemy would add to one (a
column's default), it is compiled instead."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import sqlite

from engine.storage import group_commit
from engine.storage.sqlite_commit import shape_sql
from engine.storage.writer import (
    BLOBS,
    EVENTS,
    NODE_RESULTS,
    REUSED,
    RUNS,
    SHAPES,
    sqlite_statements,
)

DIALECT = sqlite.dialect()  # type: ignore[no-untyped-call]


ALL = {
    "blobs": [c.key for c in BLOBS.columns],
    "runs": [c.key for c in RUNS.columns],
    "reused": [c.key for c in REUSED.columns],
    "results": [c.key for c in NODE_RESULTS.columns],
    "events": [c.key for c in EVENTS.columns],
    "finished": ["finished_run_id", *group_commit.FINISHED_COLUMNS],
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_statement_is_written_as_sqlalchemy_compiles_it(name: str) -> None:
    statement = sqlite_statements()[name]
    for keys in (ALL[name], list(reversed(ALL[name]))):
        compiled = statement.compile(dialect=DIALECT, column_keys=keys)
        assert shape_sql(SHAPES[name], keys, DIALECT) == (
            compiled.string,
            list(compiled.positiontup),
        )


def test_a_statement_sqlalchemy_would_add_a_default_to_is_compiled() -> None:
    without = [key for key in ALL["results"] if key != "attempt"]
    assert shape_sql(SHAPES["results"], without, DIALECT) is None
    assert shape_sql(SHAPES["runs"], [*ALL["runs"], "unknown"], DIALECT) is None
