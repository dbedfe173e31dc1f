"""A group commit's statements on a SQLite file, run on the driver's cursor. Each statement is
compiled once per set of columns, and each value goes through the bind processor SQLAlchemy
would apply to it (JSON, timestamps): what is stored is what SQLAlchemy's own execute stores.

Through `Connection.execute`, the statements of a small commit (a rerun's row, its last result
and events) spent more than twice as long in SQLAlchemy as in SQLite."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.expression import Executable

__all__ = ["Processor", "SQLiteStatements"]

Processor = Callable[[Any], Any] | None


class _Compiled:
    """A statement's SQL for one set of parameters, and how to make its positional values."""

    def __init__(self, statement: Any, keys: Sequence[str], connection: Connection) -> None:
        dialect = connection.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql: str = compiled.string
        self.params: list[tuple[str, Processor]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ]

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row[name] if process is None else process(row[name]) for name, process in self.params
        )


class SQLiteStatements:
    """INSERT and UPDATE statements by name, executed with many rows at once."""

    def __init__(self, statements: Mapping[str, Executable]) -> None:
        self._statements = statements
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def execute(self, connection: Connection, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute the statement ``name`` once per row (rows with the same keys at once)."""
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for keys, same in groups.items():
                compiled = self._compiled.get((name, keys))
                if compiled is None:
                    statement = self._statements[name]
                    compiled = self._compiled[name, keys] = _Compiled(statement, keys, connection)
                cursor.executemany(compiled.sql, [compiled.values(row) for row in same])
        finally:
            cursor.close()

    @staticmethod
    def stored(connection: Connection, table: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are ids of rows of ``table``."""
        marks = ", ".join("?" * len(ids))
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", tuple(ids))  # noqa: S608 - our table name, ? marks
            return {row[0] for row in cursor.fetchall()}
        finally:
            cursor.close()
