"""Hot writes straight through the driver's executemany: one prepared statement per table per
transaction, no per-row statement processing (SQLAlchemy's costs about 10 µs a row here).
SQLAlchemy still owns the schema; the values are passed as its column types store them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Table
from sqlalchemy.engine import Connection

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DateTime storage format on SQLite


def _marks(conn: Connection, count: int, start: int = 1) -> list[str]:
    style = conn.dialect.paramstyle
    if style == "qmark":
        return ["?"] * count
    if style == "numeric_dollar":
        return [f"${n}" for n in range(start, start + count)]
    if style in ("format", "pyformat"):
        return ["%s"] * count
    raise NotImplementedError(f"paramstyle {style!r}")


def run_many(conn: Connection, sql: str, rows: list[Any]) -> None:
    """`sql` once for each of `rows`, in `conn`'s transaction. On SQLite straight on the
    sqlite3 connection: SQLAlchemy's execution machinery costs more than SQLite's insert
    (about 7 us a call, measured) and adds nothing to a statement built from the schema."""
    if conn.dialect.name == "sqlite":
        conn.connection.dbapi_connection.executemany(sql, rows)  # type: ignore[union-attr]
    else:
        conn.exec_driver_sql(sql, rows)


def run_one(conn: Connection, sql: str, row: tuple[Any, ...] = ()) -> Any:
    """`sql` once, in `conn`'s transaction; the DB-API cursor (`lastrowid`, `fetchone`)."""
    if conn.dialect.name == "sqlite":
        return conn.connection.dbapi_connection.execute(sql, row)  # type: ignore[union-attr]
    return conn.exec_driver_sql(sql, row)


def select_in(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    where: str,
    value: Any,
    among: str,
    values: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """`columns` of the rows whose `where` equals `value` and `among` is one of `values`
    (string and number columns: the driver's values, with no type processing)."""
    if not values:
        return []  # `IN ()` is no SQL
    names = ", ".join(_columns(table, columns))
    first, *marks = _marks(conn, len(values) + 1)
    key, member = _columns(table, [where, among])
    sql = (
        f"SELECT {names} FROM {table.name} "  # noqa: S608
        f"WHERE {key} = {first} AND {member} IN ({', '.join(marks)})"
    )
    return list(run_one(conn, sql, (value, *values)))


def stored_time(conn: Connection, moment: datetime) -> Any:
    """`moment` as a DateTime(timezone=True) column takes it through the driver."""
    if conn.dialect.name == "sqlite":
        return moment.astimezone(UTC).strftime(_SQLITE_TIME)
    return moment


def insert_many(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    skip_existing: bool = False,
) -> None:
    """Insert `rows` (values in `columns`' order); `skip_existing`: a row whose key is there
    already is left out (ON CONFLICT DO NOTHING: SQLite and PostgreSQL alike)."""
    if not rows:
        return
    names = _columns(table, columns)
    marks = ", ".join(_marks(conn, len(columns)))
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
    if skip_existing:
        sql += " ON CONFLICT DO NOTHING"
    run_many(conn, sql, list(rows))


def stored_json(value: Any) -> str:
    """`value` as a JSON column stores it: the engines' `json_serializer` too, so that rows
    written through the driver and through SQLAlchemy are the same text (msgspec: several
    times faster than the json module)."""
    return msgspec.json.encode(value).decode()


def delete_many(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Delete the rows whose `columns` equal each of `rows`."""
    if not rows:
        return
    condition = " AND ".join(
        f"{column} = {mark}"
        for column, mark in zip(_columns(table, columns), _marks(conn, len(columns)), strict=True)
    )
    run_many(conn, f"DELETE FROM {table.name} WHERE {condition}", list(rows))  # noqa: S608


_COMPILED: dict[tuple[int, str], tuple[str, tuple[str, ...]]] = {}


def execute_compiled(
    conn: Connection, statement: Any, rows: Sequence[dict[str, Any]], times: frozenset[str]
) -> None:
    """Run a SQLAlchemy statement (built once, module-level) through the driver's executemany:
    compiled once per dialect, then no per-execution statement processing. `times` names the
    DateTime columns (passed as `stored_time` gives them)."""
    if not rows:
        return
    key = (id(statement), conn.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        built = statement.compile(dialect=conn.dialect)
        compiled = _COMPILED[key] = (built.string, tuple(built.positiontup or ()))
    sql, names = compiled
    run_many(
        conn,
        sql,
        [
            tuple(stored_time(conn, row[name]) if name in times else row[name] for name in names)
            for row in rows
        ],
    )


def delete_ranges(
    conn: Connection, table: Table, column: str, ranges: Sequence[tuple[Any, Any]]
) -> None:
    """Delete the rows whose `column` lies in each (first, last) of `ranges`, bounds included."""
    if not ranges:
        return
    (name,) = _columns(table, [column])
    low, high = _marks(conn, 2)
    sql = f"DELETE FROM {table.name} WHERE {name} >= {low} AND {name} <= {high}"  # noqa: S608
    run_many(conn, sql, list(ranges))


def _columns(table: Table, columns: Sequence[str]) -> tuple[str, ...]:
    """The columns' names as the table defines them (a name it lacks raises KeyError): the
    statements are built from the schema, never from input, hence the S608 exemptions."""
    return _names(table, tuple(columns))


@functools.lru_cache(maxsize=256)
def _names(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(table.c[column].name for column in columns)
