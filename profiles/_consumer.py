"""The core's event consumer: dedupe by message id, then upsert profiles, in one transaction.

Delivery is at least once; applying a message and recording its id commit together, so a
redelivered message (after a crash before the bus learnt of it) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import Table, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bus import BusMessage, Database, EventEnvelope, decode_payload
from profiles._apply import ProfileState, apply_event, as_utc, subject_key
from profiles._tables import ProcessedMessage, ProfileRow

log = structlog.get_logger("consentgate.profiles")

_profiles = cast(Table, ProfileRow.__table__)
_processed = cast(Table, ProcessedMessage.__table__)
_UPDATED_COLUMNS = ("traits", "event_counts", "first_seen", "last_seen", "updated_at")


class ProfileConsumer:
    """The bus handler of the profile core."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._postgres = database.dialect_name == "postgresql"

    async def __call__(self, messages: Sequence[BusMessage]) -> None:
        work = self.prepare(messages)
        if work is not None:
            await self._db.transaction(work)

    def prepare(self, messages: Sequence[BusMessage]) -> Callable[[Connection], None] | None:
        """Decode `messages` here; the returned unit applies them inside a transaction (the
        caller's, so that other writers can share its commit)."""
        envelopes: list[EventEnvelope] = []
        for message in messages:
            payload = decode_payload(message)
            if isinstance(payload, EventEnvelope):
                envelopes.append(payload)
            else:
                log.debug("control_message_ignored", kind=type(payload).__name__)
        if not envelopes:
            return None
        return lambda conn: self._apply_new(conn, envelopes)

    async def purge_processed(self, retention: timedelta) -> int:
        """Forget message ids older than `retention` (never less than 24 hours)."""
        cutoff = datetime.now(UTC) - max(retention, timedelta(hours=24))
        statement = delete(_processed).where(_processed.c.processed_at < cutoff)
        return int(await self._db.transaction(lambda conn: conn.execute(statement).rowcount or 0))

    def _apply_new(self, conn: Connection, envelopes: list[EventEnvelope]) -> None:
        fresh = _claim_new(conn, envelopes)
        if fresh:
            self._apply(conn, fresh)

    def _apply(self, conn: Connection, envelopes: list[EventEnvelope]) -> None:
        by_profile: dict[tuple[str, str], list[EventEnvelope]] = {}
        for envelope in envelopes:
            key = subject_key(envelope)
            if key is None:
                continue  # the gateway rejects these; nothing to attach them to
            by_profile.setdefault((envelope.source_id, key), []).append(envelope)
        if not by_profile:
            return

        query = select(_profiles).where(
            tuple_(_profiles.c.source_id, _profiles.c.subject).in_(list(by_profile))
        )
        if self._postgres:
            query = query.with_for_update()
        existing = {
            (row.source_id, row.subject): ProfileState(
                subject=row.subject,
                traits=dict(row.traits),
                event_counts=dict(row.event_counts),
                first_seen=as_utc(row.first_seen),
                last_seen=as_utc(row.last_seen),
            )
            for row in conn.execute(query)
        }
        now = datetime.now(UTC)
        rows = []
        for (source_id, subject), events in by_profile.items():
            state = existing.get((source_id, subject))
            for envelope in events:
                state = apply_event(state, envelope, subject)
            assert state is not None  # every group holds at least one event
            rows.append(
                {
                    "source_id": source_id,
                    "subject": subject,
                    "traits": state.traits,
                    "event_counts": state.event_counts,
                    "first_seen": state.first_seen,
                    "last_seen": state.last_seen,
                    "updated_at": now,
                }
            )
        # One statement for every profile touched.
        upsert = postgresql_insert(_profiles) if self._postgres else sqlite_insert(_profiles)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[_profiles.c.source_id, _profiles.c.subject],
                set_={name: upsert.excluded[name] for name in _UPDATED_COLUMNS},
            ),
            rows,
        )


def _claim_new(conn: Connection, envelopes: list[EventEnvelope]) -> list[EventEnvelope]:
    """Record the message ids not seen before and return their envelopes, in order."""
    unique: dict[tuple[str, str], EventEnvelope] = {}
    for envelope in envelopes:
        unique.setdefault((envelope.source_id, envelope.message_id), envelope)
    key = tuple_(_processed.c.source_id, _processed.c.message_id)
    seen = {
        (row.source_id, row.message_id)
        for row in conn.execute(
            select(_processed.c.source_id, _processed.c.message_id).where(key.in_(list(unique)))
        )
    }
    fresh = [envelope for pair, envelope in unique.items() if pair not in seen]
    if fresh:
        now = datetime.now(UTC)
        conn.execute(
            insert(_processed),
            [
                {"source_id": e.source_id, "message_id": e.message_id, "processed_at": now}
                for e in fresh
            ],
        )
    return fresh
