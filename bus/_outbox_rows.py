"""The outbox's units in the database, inside the caller's transaction: a group committed
with the work that rides it, handled units deleted, failed attempts counted and, past the
last one, moved to the dead letters. `bus._outbox` drives them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from bus._dead_letters import insert_dead_letters
from bus._driver import insert_many, stored_time
from bus._tables import outbox
from bus._transport import AlsoInCommit
from bus.envelope import BusMessage

# built once: building a statement (and its cache key) cost more than running it
_INSERT_UNITS_RETURNING = insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
_DELETE_UNITS = delete(outbox).where(outbox.c.id.in_(bindparam("unit_ids", expanding=True)))


def commit_group(
    conn: Connection, rows: list[dict[str, Any]], returning: bool, also: list[AlsoInCommit]
) -> list[int]:
    """A group's units, then the work committed with them; the units' ids when `returning`."""
    unit_ids = insert_units(conn, rows, returning) if rows else []
    for work in also:
        work(conn)
    return unit_ids


def insert_units(conn: Connection, rows: list[dict[str, Any]], returning: bool) -> list[int]:
    """Insert the units; their ids, in the order of `rows`, when `returning`."""
    if not returning:  # through the driver: no per-row statement processing
        insert_many(
            conn,
            outbox,
            ("messages", "message_count", "created_at"),
            [
                (row["messages"], row["message_count"], stored_time(conn, row["created_at"]))
                for row in rows
            ],
        )
        return []
    return [int(unit_id) for unit_id in conn.execute(_INSERT_UNITS_RETURNING, rows).scalars()]


def delete_units(conn: Connection, unit_ids: list[int]) -> None:
    if unit_ids:
        conn.execute(_DELETE_UNITS, {"unit_ids": unit_ids})


def count_failure(
    conn: Connection, unit_id: int, failed: list[tuple[BusMessage, Exception]], max_attempts: int
) -> bool:
    """Record one more failed attempt; True when the failures were moved to dead letters."""
    attempts = conn.execute(select(outbox.c.attempts).where(outbox.c.id == unit_id)).scalar_one()
    attempts += 1
    if attempts < max_attempts:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == unit_id)
            .values(attempts=attempts, last_error=type(failed[-1][1]).__name__)
        )
        return False
    insert_dead_letters(conn, failed, attempts)
    conn.execute(delete(outbox).where(outbox.c.id == unit_id))
    return True
