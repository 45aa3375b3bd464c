"""Reading profiles: the shape `GET /v1/profiles/{userId}` returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from profiles._segments import segments_of
from profiles._tables import ErasureRow, ProfileRow

_profiles = cast(Table, ProfileRow.__table__)
_erasures = cast(Table, ErasureRow.__table__)


class Computed(msgspec.Struct, frozen=True, kw_only=True):
    first_seen: datetime
    last_seen: datetime
    event_counts: dict[str, int]


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    traits: dict[str, Any]
    computed: Computed
    segments: list[str] = []


async def read_profile(database: Database, source_id: str, subject: str) -> Profile | None:
    query = select(_profiles).where(
        _profiles.c.source_id == source_id, _profiles.c.subject == subject
    )

    def read(conn: Connection) -> tuple[Any, list[str]]:
        row = conn.execute(query).first()
        return row, segments_of(conn, source_id, subject) if row is not None else []

    row, segments = await database.read(read)
    if row is None:
        return None
    return Profile(
        subject=row.subject,
        segments=segments,
        traits=dict(row.traits),
        computed=Computed(
            first_seen=as_utc(row.first_seen),
            last_seen=as_utc(row.last_seen),
            event_counts=dict(row.event_counts),
        ),
    )


class ErasureReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The core's account of one pseudonym's erasure."""

    subject: str
    erased_at: datetime
    profiles_deleted: int


async def erasure_receipts(
    database: Database, source_id: str, request_id: str
) -> list[ErasureReceipt]:
    """What the core erased for privacy request `request_id` (empty until it has run)."""
    query = select(_erasures).where(
        _erasures.c.source_id == source_id, _erasures.c.request_id == request_id
    )
    rows = await database.read(lambda conn: list(conn.execute(query)))
    return [
        ErasureReceipt(
            subject=row.subject,
            erased_at=as_utc(row.erased_at),
            profiles_deleted=row.profiles_deleted,
        )
        for row in rows
    ]
