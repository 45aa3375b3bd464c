"""Profile rows in and out of the database, and erasing a subject from every core table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

import msgspec
import structlog
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bus import Erase, as_utc, select_in
from profiles._identity import forget_links, linked_identities
from profiles._segments import current_memberships, write_changes
from profiles._state import (
    ProfileState,
    _Stored,
    decode_accumulated,
    decode_accumulated_json,
    encode_accumulated,
)
from profiles._tables import ErasureRow, ProfileRow, SegmentChangeRow, SegmentMemberRow

log = structlog.get_logger("consentgate.profiles")

_profiles = cast(Table, ProfileRow.__table__)
_erasures = cast(Table, ErasureRow.__table__)
_members = cast(Table, SegmentMemberRow.__table__)
_changes = cast(Table, SegmentChangeRow.__table__)
_UPDATED_COLUMNS = (
    "traits",
    "event_counts",
    "first_seen",
    "last_seen",
    "updated_at",
    "day_counts",
    "consent",
    "accumulated",
)


def state_of(row: Any) -> ProfileState:
    """A row as SQLAlchemy's column types give it (JSON decoded, times as datetimes)."""
    return _state(
        row.subject,
        dict(row.traits),
        dict(row.event_counts),
        as_utc(row.first_seen),
        as_utc(row.last_seen),
        {name: dict(days) for name, days in row.day_counts.items()},
        list(row.consent),
        decode_accumulated(row.accumulated),
    )


def _state(
    subject: str,
    traits: dict[str, Any],
    event_counts: dict[str, int],
    first_seen: datetime,
    last_seen: datetime,
    day_counts: dict[str, dict[str, int]],
    consent: list[str],
    kept: _Stored,
) -> ProfileState:
    return ProfileState(
        subject=subject,
        traits=traits,
        event_counts=event_counts,
        first_seen=first_seen,
        last_seen=last_seen,
        day_counts=day_counts,
        consent=consent,
        consent_clock=kept.consent_clock,
        trait_clock=kept.trait_clock,
        event_last=kept.event_last,
        accumulated=kept.accumulated,
        identified=kept.identified,
        segments=kept.segments,
    )


# The hot statements, built once: building one (and its cache key) cost more than running it.
_PROFILES = select(_profiles).where(
    _profiles.c.source_id == bindparam("source_id"),
    _profiles.c.subject.in_(bindparam("subjects", expanding=True)),
)
_PROFILES_FOR_UPDATE = _PROFILES.with_for_update()


@cache
def _upsert_statement(postgres: bool) -> Any:
    upsert = postgresql_insert(_profiles) if postgres else sqlite_insert(_profiles)
    return upsert.on_conflict_do_update(
        index_elements=[_profiles.c.source_id, _profiles.c.subject],
        set_={name: upsert.excluded[name] for name in _UPDATED_COLUMNS},
    )


# what a state is made of, read straight from SQLite (`_state_of_sqlite`)
_STATE_COLUMNS = (
    "subject", "traits", "event_counts", "first_seen", "last_seen", "day_counts", "consent",
    "accumulated",
)  # fmt: skip
_json = msgspec.json.Decoder()


def _state_of_sqlite(row: tuple[Any, ...]) -> ProfileState:
    """`state_of` a row of `_STATE_COLUMNS` as the sqlite3 driver gives it: JSON as text,
    times as SQLAlchemy stores them (naive UTC text)."""
    subject, traits, event_counts, first_seen, last_seen, day_counts, consent, stored = row
    return _state(
        subject,
        _json.decode(traits),
        _json.decode(event_counts),
        datetime.fromisoformat(first_seen).replace(tzinfo=UTC),
        datetime.fromisoformat(last_seen).replace(tzinfo=UTC),
        _json.decode(day_counts),
        _json.decode(consent),
        decode_accumulated_json(stored),
    )


class ProfileRows:
    def __init__(self, *, postgres: bool) -> None:
        self._postgres = postgres

    def load(self, conn: Connection, source_id: str, subjects: set[str]) -> dict[str, ProfileState]:
        if not subjects:
            return {}
        if conn.dialect.name == "sqlite":  # SQLAlchemy's execution cost more than the read
            rows = select_in(
                conn, _profiles, _STATE_COLUMNS, "source_id", source_id, "subject", list(subjects)
            )
            return {row[0]: _state_of_sqlite(row) for row in rows}
        query = _PROFILES_FOR_UPDATE if self._postgres else _PROFILES
        found = conn.execute(query, {"source_id": source_id, "subjects": list(subjects)})
        return {row.subject: state_of(row) for row in found}

    def upsert(self, conn: Connection, source_id: str, states: Iterable[ProfileState]) -> None:
        """One statement for every profile given."""
        now = datetime.now(UTC)
        rows = [
            {
                "source_id": source_id,
                "subject": state.subject,
                "traits": state.traits,
                "event_counts": state.event_counts,
                "first_seen": state.first_seen,
                "last_seen": state.last_seen,
                "updated_at": now,
                "day_counts": state.day_counts,
                "consent": state.consent,
                "accumulated": encode_accumulated(state),
            }
            for state in states
        ]
        if not rows:
            return
        conn.execute(_upsert_statement(self._postgres), rows)

    def remove(
        self,
        conn: Connection,
        source_id: str,
        causes: Mapping[str, str],
    ) -> None:
        """Profiles merged into others: their rows go, their memberships end (logged)."""
        subjects = list(causes)
        conn.execute(
            delete(_profiles).where(
                _profiles.c.source_id == source_id, _profiles.c.subject.in_(subjects)
            )
        )
        current = current_memberships(conn, source_id, subjects)
        write_changes(conn, source_id, current, {}, causes)


def erase_subject(conn: Connection, erase: Erase) -> list[str]:
    """Delete the subject's profiles, links, memberships and their history; leave a receipt
    (the tombstone) per pseudonym, its linked identities included."""
    source_id = erase.source_id
    subjects = sorted(
        linked_identities(conn, source_id, dict.fromkeys((erase.subject, *erase.others)))
    )
    links = forget_links(conn, source_id, subjects)
    for subject in subjects:
        deleted = conn.execute(
            delete(_profiles).where(
                _profiles.c.source_id == source_id, _profiles.c.subject == subject
            )
        ).rowcount
        for table in (_members, _changes):
            conn.execute(
                delete(table).where(table.c.source_id == source_id, table.c.subject == subject)
            )
        conn.execute(
            delete(_erasures).where(
                _erasures.c.source_id == source_id, _erasures.c.subject == subject
            )
        )
        conn.execute(
            insert(_erasures).values(
                source_id=source_id,
                subject=subject,
                request_id=erase.request_id,
                erased_at=erase.at,
                profiles_deleted=deleted or 0,
            )
        )
    log.info(
        "subject_erased", privacy_request_id=erase.request_id, pseudonyms=len(subjects), links=links
    )
    return subjects
