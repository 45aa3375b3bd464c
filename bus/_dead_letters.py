"""Dead letters of an erased subject: found by the pseudonyms in their envelopes, deleted."""

from __future__ import annotations

from collections.abc import Collection

import msgspec
from sqlalchemy import delete, select

from bus._database import Database
from bus._tables import dead_letters
from bus.envelope import EVENTS_SUBJECT, BusMessage, EventEnvelope, decode_payload


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
