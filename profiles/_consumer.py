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

from bus import BusMessage, BusPayload, Database, Erase, EventEnvelope, as_utc, decode_payload
from profiles._apply import DEFAULT_MAX_KEYS, ProfileState, apply_event, subject_key
from profiles._segments import SegmentEvaluator
from profiles._tables import ErasureRow, ProcessedMessage, ProfileRow, SegmentMemberRow

log = structlog.get_logger("consentgate.profiles")

_profiles = cast(Table, ProfileRow.__table__)
_processed = cast(Table, ProcessedMessage.__table__)
_erasures = cast(Table, ErasureRow.__table__)
_members = cast(Table, SegmentMemberRow.__table__)
_UPDATED_COLUMNS = (
    "traits",
    "event_counts",
    "first_seen",
    "last_seen",
    "updated_at",
    "day_counts",
    "consent",
)


class ProfileConsumer:
    """The bus handler of the profile core."""

    def __init__(
        self,
        database: Database,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        on_capped: Callable[[str, int], None] | None = None,
    ) -> None:
        """`on_capped(map, n)` hears of keys a full profile map folded or left out."""
        self._db = database
        self._segments = SegmentEvaluator()
        self._max_keys = max_keys
        self._on_capped = on_capped
        self._postgres = database.dialect_name == "postgresql"
        self._erasures_exist: bool | None = None  # learnt once, then kept by _run

    async def __call__(self, messages: Sequence[BusMessage]) -> None:
        work = self.prepare(messages)
        if work is not None:
            await self._db.transaction(work)

    def prepare(self, messages: Sequence[BusMessage]) -> Callable[[Connection], None] | None:
        """Decode `messages` here; the returned unit applies them inside a transaction (the
        caller's, so that other writers can share its commit). Events and erasures apply in
        the order they were published."""
        steps = [decode_payload(message) for message in messages]
        if not steps:
            return None
        return lambda conn: self._run(conn, steps)

    def _run(self, conn: Connection, steps: list[BusPayload]) -> None:
        pending: list[EventEnvelope] = []
        for step in steps:
            match step:  # the whole message union, in one place
                case EventEnvelope():
                    pending.append(step)
                case Erase():
                    if pending:
                        self._apply_new(conn, pending)
                        pending = []
                    _erase(conn, step)
                    self._erasures_exist = True
        if pending:
            self._apply_new(conn, pending)

    def _report_capped(self, state: ProfileState) -> None:
        if self._on_capped is None:
            return
        if state.capped_event_names:
            self._on_capped("event_counts", state.capped_event_names)
        if state.capped_traits:
            self._on_capped("traits", state.capped_traits)

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
        if self._erasures_exist is None:
            self._erasures_exist = (
                conn.execute(select(_erasures.c.subject).limit(1)).first() is not None
            )
        if self._erasures_exist:
            _skip_erased(conn, by_profile)
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
                day_counts={name: dict(days) for name, days in row.day_counts.items()},
                consent=list(row.consent),
            )
            for row in conn.execute(query)
        }
        now = datetime.now(UTC)
        rows = []
        applied: dict[str, list[ProfileState]] = {}
        for (source_id, subject), events in by_profile.items():
            state = existing.get((source_id, subject))
            for envelope in events:
                state = apply_event(state, envelope, subject, self._max_keys)
            if state is None:
                continue  # unreachable: every group holds at least one event
            self._report_capped(state)
            applied.setdefault(source_id, []).append(state)
            rows.append(
                {
                    "source_id": source_id,
                    "subject": subject,
                    "traits": state.traits,
                    "event_counts": state.event_counts,
                    "first_seen": state.first_seen,
                    "last_seen": state.last_seen,
                    "updated_at": now,
                    "day_counts": state.day_counts,
                    "consent": state.consent,
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
        for source_id, states in applied.items():
            self._segments.update(conn, source_id, states)


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


def _skip_erased(conn: Connection, by_profile: dict[tuple[str, str], list[EventEnvelope]]) -> None:
    """Drop the events of erased subjects that were received before their erasure."""
    key = tuple_(_erasures.c.source_id, _erasures.c.subject)
    erased = {
        (row.source_id, row.subject): as_utc(row.erased_at)
        for row in conn.execute(
            select(_erasures.c.source_id, _erasures.c.subject, _erasures.c.erased_at).where(
                key.in_(list(by_profile))
            )
        )
    }
    for profile, erased_at in erased.items():
        kept = [e for e in by_profile[profile] if as_utc(e.received_at) > erased_at]
        if kept:
            by_profile[profile] = kept
        else:
            del by_profile[profile]


def _erase(conn: Connection, erase: Erase) -> None:
    """Delete the subject's profiles and leave a receipt (the tombstone) per pseudonym."""
    subjects = list(dict.fromkeys((erase.subject, *erase.others)))
    for subject in subjects:
        deleted = conn.execute(
            delete(_profiles).where(
                _profiles.c.source_id == erase.source_id, _profiles.c.subject == subject
            )
        ).rowcount
        conn.execute(
            delete(_members).where(
                _members.c.source_id == erase.source_id, _members.c.subject == subject
            )
        )
        conn.execute(
            delete(_erasures).where(
                _erasures.c.source_id == erase.source_id, _erasures.c.subject == subject
            )
        )
        conn.execute(
            insert(_erasures).values(
                source_id=erase.source_id,
                subject=subject,
                request_id=erase.request_id,
                erased_at=erase.at,
                profiles_deleted=deleted or 0,
            )
        )
    log.info("subject_erased", privacy_request_id=erase.request_id, pseudonyms=len(subjects))
