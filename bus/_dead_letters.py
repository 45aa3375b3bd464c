"""Dead letters: messages that failed on their own too often, kept for inspection and replay,
counted for the metrics, and deleted with an erased subject (found by the pseudonyms in their
envelopes)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import msgspec
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from bus._database import Database
from bus._tables import dead_letters
from bus.envelope import EVENTS_SUBJECT, BusMessage, EventEnvelope, decode_payload


def insert_dead_letters(
    conn: Connection, failed: Sequence[tuple[BusMessage, Exception]], attempts: int
) -> None:
    now = datetime.now(UTC)
    conn.execute(
        insert(dead_letters),
        [
            {
                "subject": message.subject,
                "message_id": message.message_id,
                "headers": message.headers,
                "payload": message.payload,
                "failed_at": now,
                "attempts": attempts,
                "last_error": type(exc).__name__,
            }
            for message, exc in failed
        ],
    )


async def count_dead_letters(database: Database) -> int:
    query = select(func.count()).select_from(dead_letters)
    return int(await database.read(lambda conn: conn.execute(query).scalar_one()))


async def erase_dead_letters(database: Database, source_id: str, subjects: Collection[str]) -> int:
    """Delete the dead-lettered events of `subjects` (an erasure); returns how many.

    Dead letters are few (a message that failed alone five times), so they are read whole.
    """
    query = select(dead_letters.c.id, dead_letters.c.payload).where(
        dead_letters.c.subject == EVENTS_SUBJECT
    )
    rows = await database.read(lambda conn: list(conn.execute(query)))
    doomed = [row_id for row_id, payload in rows if _belongs(payload, source_id, subjects)]
    if doomed:
        statement = delete(dead_letters).where(dead_letters.c.id.in_(doomed))
        await database.transaction(lambda conn: conn.execute(statement))
    return len(doomed)


def _belongs(payload: bytes, source_id: str, subjects: Collection[str]) -> bool:
    try:
        envelope = decode_payload(
            BusMessage(subject=EVENTS_SUBJECT, message_id="", payload=payload)
        )
    except msgspec.DecodeError:
        return False  # not an envelope this version can read: left for an operator
    return (
        isinstance(envelope, EventEnvelope)
        and envelope.source_id == source_id
        and (envelope.subject in subjects or envelope.anonymous in subjects)
    )
