"""A group commit's statements on a SQLite file, run on the driver's cursor. Each statement is
made once per set of columns, and each value goes through the bind processor SQLAlchemy would
apply to it (JSON, timestamps): what is stored is what SQLAlchemy's own execute stores.

Through `Connection.execute`, the statements of a small commit (a rerun's row, its last result
and events) spent more than twice as long in SQLAlchemy as in SQLite. A statement given as a
`Shape` is written here, as SQLAlchemy compiles it (tests/storage/test_sqlite_commit.py holds
them to that): compiling one costs more than a whole small commit, and a process (a
`nodeloom rerun`) that commits once would pay for every statement of its commit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

__all__ = ["Processor", "SQLiteStatements", "Shape", "shape_sql"]

Processor = Callable[[Any], Any] | None


class Shape(NamedTuple):
    """A statement written by hand: an INSERT into ``table`` (on a conflict on the columns
    ``conflict``, nothing done, or the columns of ``update`` set: each to the row's own value
    where None, else to that SQL); or, with ``key`` (a column, a parameter), an UPDATE of the
    row whose column is the parameter."""

    table: Table
    conflict: tuple[str, ...] = ()
    update: Mapping[str, str | None] | None = None
    key: tuple[str, str] | None = None


class _Compiled:
    """A statement's SQL for one set of parameters, and how to make its positional values."""

    def __init__(self, sql: str, params: list[tuple[str, Processor]]) -> None:
        self.sql = sql
        self.params = params

    @classmethod
    def compiled(cls, statement: Any, keys: Sequence[str], dialect: Dialect) -> _Compiled:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        return cls(
            compiled.string,
            [
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup
            ],
        )

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row[name] if process is None else process(row[name]) for name, process in self.params
        )


def shape_sql(shape: Shape, keys: Sequence[str], dialect: Dialect) -> tuple[str, list[str]] | None:
    """The SQL of ``shape`` for rows of ``keys``, and its parameters in order, as SQLAlchemy
    compiles the statement; None when SQLAlchemy would add to it (a column's default, a column
    set on update) or refuse it (a key that is no column): it is then compiled."""
    table, given = shape.table, set(keys)
    quote = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(table)
    if shape.key is not None:
        column, param = shape.key
        given.discard(param)
        if given - set(table.columns.keys()) or param not in keys:
            return None
        if any(c.onupdate is not None and c.key not in given for c in table.columns):
            return None
        names = [c.key for c in table.columns if c.key in given]
        sets = ", ".join(f"{quote(table.columns[n].name)}=?" for n in names)
        where = f"{name}.{quote(table.columns[column].name)} = ?"
        return f"UPDATE {name} SET {sets} WHERE {where}", [*names, param]  # noqa: S608 - names of the schema
    if given - set(table.columns.keys()):
        return None
    if any(c.default is not None and c.key not in given for c in table.columns):
        return None
    names = [c.key for c in table.columns if c.key in given]
    columns = ", ".join(quote(table.columns[n].name) for n in names)
    sql = f"INSERT INTO {name} ({columns}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608 - names of the schema
    if shape.conflict:
        sql += f" ON CONFLICT ({', '.join(quote(c) for c in shape.conflict)}) "
        if shape.update is None:
            sql += "DO NOTHING"
        else:
            sql += "DO UPDATE SET " + ", ".join(
                f"{quote(c)} = {f'excluded.{quote(c)}' if value is None else value}"
                for c, value in shape.update.items()
            )
    return sql, names


def _written(shape: Shape, keys: Sequence[str], dialect: Dialect) -> _Compiled | None:
    found = shape_sql(shape, keys, dialect)
    if found is None:
        return None
    sql, names = found
    columns = shape.table.columns
    types = {name: columns[name].type for name in names if name in columns}
    if shape.key is not None:
        types[shape.key[1]] = columns[shape.key[0]].type
    return _Compiled(
        sql, [(n, types[n].dialect_impl(dialect).bind_processor(dialect)) for n in names]
    )


class SQLiteStatements:
    """INSERT and UPDATE statements by name, executed with many rows at once. A statement
    given with a `Shape` is written by hand when it can be."""

    def __init__(
        self, statements: Mapping[str, Executable], shapes: Mapping[str, Shape] | None = None
    ) -> None:
        self._statements = statements
        self._shapes = shapes or {}
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
                    compiled = self._compiled[name, keys] = self._compile(name, keys, connection)
                cursor.executemany(compiled.sql, [compiled.values(row) for row in same])
        finally:
            cursor.close()

    def _compile(self, name: str, keys: Sequence[str], connection: Connection) -> _Compiled:
        shape = self._shapes.get(name)
        written = None if shape is None else _written(shape, keys, connection.dialect)
        if written is not None:
            return written
        return _Compiled.compiled(self._statements[name], keys, connection.dialect)

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
