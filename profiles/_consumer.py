"""The core's event consumer: dedupe by message id, then upsert profiles, in one transaction.

Delivery is at least once; applying a message and recording its id commit together, so a
redelivered message (after a crash before the bus learnt of it) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import Table, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bus import BusMessage, EventEnvelope, decode_payload
from profiles._apply import ProfileState, apply_event, as_utc, subject_key
from profiles._tables import ProcessedMessage, ProfileRow

log = structlog.get_logger("consentgate.profiles")

_profiles = cast(Table, ProfileRow.__table__)
_processed = cast(Table, ProcessedMessage.__table__)
_UPDATED_COLUMNS = ("traits", "event_counts", "first_seen", "last_seen", "updated_at")


class ProfileConsumer:
    """The bus handler of the profile core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock_rows = engine.dialect.name == "postgresql"
        self._insert = postgresql_insert if self._lock_rows else sqlite_insert

    async def __call__(self, messages: Sequence[BusMessage]) -> None:
        envelopes: list[EventEnvelope] = []
        for message in messages:
            payload = decode_payload(message)
            if isinstance(payload, EventEnvelope):
                envelopes.append(payload)
            else:
                log.info("control_message_ignored", kind=type(payload).__name__)
        if envelopes:
            async with self._engine.begin() as conn:
                fresh = await _claim_new(conn, envelopes)
                if fresh:
                    await self._apply(conn, fresh)

    async def purge_processed(self, retention: timedelta) -> int:
        """Forget message ids older than `retention` (never less than 24 hours)."""
        cutoff = datetime.now(UTC) - max(retention, timedelta(hours=24))
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(_processed).where(_processed.c.processed_at < cutoff)
            )
        return int(result.rowcount or 0)

    async def _apply(self, conn: AsyncConnection, envelopes: list[EventEnvelope]) -> None:
        by_profile: dict[tuple[str, str], list[EventEnvelope]] = {}
        for envelope in envelopes:
            key = subject_key(envelope)
            if key is None:
                continue  # the gateway rejects these; nothing to attach them to
            by_profile.setdefault((envelope.source_id, key), []).append(envelope)

        keys = list(by_profile)
        query = select(_profiles).where(
            tuple_(_profiles.c.source_id, _profiles.c.subject).in_(keys)
        )
        if self._lock_rows:
            query = query.with_for_update()
        existing = {
            (row.source_id, row.subject): ProfileState(
                subject=row.subject,
                traits=dict(row.traits),
                event_counts=dict(row.event_counts),
                first_seen=as_utc(row.first_seen),
                last_seen=as_utc(row.last_seen),
            )
            for row in (await conn.execute(query)).all()
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
        # One statement for every profile touched: the write lock is held for one round trip.
        upsert = self._insert(_profiles)
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[_profiles.c.source_id, _profiles.c.subject],
                set_={name: upsert.excluded[name] for name in _UPDATED_COLUMNS},
            ),
            rows,
        )


async def _claim_new(conn: AsyncConnection, envelopes: list[EventEnvelope]) -> list[EventEnvelope]:
    """Record the message ids not seen before and return their envelopes, in order."""
    unique: dict[tuple[str, str], EventEnvelope] = {}
    for envelope in envelopes:
        unique.setdefault((envelope.source_id, envelope.message_id), envelope)
    seen = {
        (row.source_id, row.message_id)
        for row in await conn.execute(
            select(_processed.c.source_id, _processed.c.message_id).where(
                tuple_(_processed.c.source_id, _processed.c.message_id).in_(list(unique))
            )
        )
    }
    fresh = [env for key, env in unique.items() if key not in seen]
    if fresh:
        now = datetime.now(UTC)
        await conn.execute(
            insert(_processed),
            [
                {"source_id": e.source_id, "message_id": e.message_id, "processed_at": now}
                for e in fresh
            ],
        )
    return fresh
