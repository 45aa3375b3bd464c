"""The outbox's units in the database, inside the caller's transaction: a group committed
with the work that rides it, handled units deleted, failed attempts counted and, past the
last one, moved to the dead letters. `bus._outbox` drives them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from bus._database import Database
from bus._dead_letters import insert_dead_letters
from bus._driver import delete_ranges, insert_many, run_one, stored_time
from bus._tables import outbox
from bus._transport import AlsoInCommit, DeliveryHandler
from bus.envelope import BusMessage

# built once: building a statement (and its cache key) cost more than running it
_INSERT_UNITS_RETURNING = insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
log = structlog.get_logger("consentgate.bus")
_NONE: list[int] = []
_UNIT_COLUMNS = ("messages", "message_count", "created_at")
_INSERT_UNIT = f"INSERT INTO {outbox.name} ({', '.join(_UNIT_COLUMNS)}) VALUES (?, ?, ?)"  # noqa: S608


def commit_group(
    conn: Connection,
    rows: list[dict[str, Any]],
    returning: bool,
    also: list[AlsoInCommit],
    handled: list[int] = _NONE,
) -> list[int]:
    """A group's units, then the work committed with them; the units' ids when `returning`.
    `handled`: units delivered since, deleted in the same commit (no commit of their own)."""
    delete_units(conn, handled)
    unit_ids = insert_units(conn, rows, returning) if rows else []
    for work in also:
        work(conn)
    return unit_ids


def insert_units(conn: Connection, rows: list[dict[str, Any]], returning: bool) -> list[int]:
    """Insert the units; their ids, in the order of `rows`, when `returning`."""
    values = [
        (row["messages"], row["message_count"], stored_time(conn, row["created_at"]))
        for row in rows
    ]
    if not returning:  # through the driver: no per-row statement processing
        insert_many(conn, outbox, _UNIT_COLUMNS, values)
        return []
    if conn.dialect.name == "sqlite":  # a row at a time: each one's rowid, no RETURNING
        return [int(run_one(conn, _INSERT_UNIT, row).lastrowid) for row in values]
    return [int(unit_id) for unit_id in conn.execute(_INSERT_UNITS_RETURNING, rows).scalars()]


def delete_units(conn: Connection, unit_ids: list[int]) -> None:
    """One range delete per run of consecutive ids (a process's own units mostly are one)."""
    if unit_ids:
        delete_ranges(conn, outbox, "id", id_ranges(unit_ids))


def id_ranges(ids: list[int]) -> list[tuple[int, int]]:
    """`ids` as (first, last) runs of consecutive ids."""
    ordered = sorted(set(ids))
    ranges: list[tuple[int, int]] = []
    first = last = ordered[0]
    for unit_id in ordered[1:]:
        if unit_id != last + 1:
            ranges.append((first, last))
            first = unit_id
        last = unit_id
    ranges.append((first, last))
    return ranges


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


async def deliver_alone(
    database: Database,
    handler: DeliveryHandler,
    units: list[tuple[int, list[BusMessage]]],
    max_attempts: int,
) -> list[tuple[int, int | None]]:
    """Each message of `units` to the handler alone (their batch failed): the units whose every
    message was handled, with the receipt of the last. For each other unit an attempt is
    counted and, past `max_attempts`, what failed moves to the dead letters."""
    handled: list[tuple[int, int | None]] = []
    for unit_id, unit in units:
        failed: list[tuple[BusMessage, Exception]] = []
        receipt: int | None = None
        for message in unit:
            try:
                receipts = await handler([message])
                receipt = receipts[-1] if receipts else None
            except Exception as exc:
                failed.append((message, exc))
        if not failed:
            handled.append((unit_id, receipt))
            continue
        dead = await database.transaction(
            functools.partial(
                count_failure, unit_id=unit_id, failed=failed, max_attempts=max_attempts
            )
        )
        for message, error in failed if dead else ():
            log.error(
                "outbox_dead_letter", message_id=message.message_id, error=type(error).__name__
            )
    return handled


def last_receipts(
    units: list[tuple[int, list[BusMessage]]], receipts: Sequence[int] | None
) -> list[tuple[int, int | None]]:
    """Each unit with the receipt of its last message (`receipts` is one per message)."""
    if not receipts:
        return [(unit_id, None) for unit_id, _ in units]
    ends: list[tuple[int, int | None]] = []
    end = 0
    for unit_id, unit in units:
        end += len(unit)
        ends.append((unit_id, receipts[end - 1]))
    return ends
