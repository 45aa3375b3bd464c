"""Reading profiles: the shape `GET /v1/profiles/{userId}` returns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, select, tuple_
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from profiles._computed import ComputedView, computed_view
from profiles._custom import TraitDefinition, custom_values
from profiles._identity import resolve_one
from profiles._profile_rows import state_of
from profiles._rules import ProfileView
from profiles._segment_store import segments_of
from profiles._state import PERSONALIZATION, decode_accumulated
from profiles._tables import ErasureRow, IdentityLinkRow, ProfileRow
from profiles._traits import read_source_traits

_profiles = cast(Table, ProfileRow.__table__)
_erasures = cast(Table, ErasureRow.__table__)
_links = cast(Table, IdentityLinkRow.__table__)


class FlowProgress(msgspec.Struct, frozen=True, kw_only=True):
    done: list[str]  # the steps done, in the order first done
    last_step: str | None  # the latest step done: where the user is, or stopped


class Computed(msgspec.Struct, frozen=True, kw_only=True):
    first_seen: datetime
    last_seen: datetime
    event_counts: dict[str, int]
    event_last: dict[str, datetime] = {}
    sessions: int = 0
    last_session_start: datetime | None = None
    flows: dict[str, FlowProgress] = {}
    platform: str | None = None
    device: str | None = None
    # "1d" / "7d" / "30d" -> event name -> count (calendar days, UTC, today included)
    windows: dict[str, dict[str, int]] = {}
    custom: dict[str, Any] = {}  # the source's declared computed traits


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    traits: dict[str, Any]
    computed: Computed
    segments: list[str] = []
    merged: list[str] = []  # pseudonyms stitched into this profile (anonymous ids, aliases)


async def read_profile(database: Database, source_id: str, subject: str) -> Profile | None:
    """The profile `subject`'s events build: its own, or the one it was merged into."""

    def read(conn: Connection) -> tuple[Any, list[str], list[str], tuple[TraitDefinition, ...]]:
        root = resolve_one(conn, source_id, subject)
        row = conn.execute(
            select(_profiles).where(_profiles.c.source_id == source_id, _profiles.c.subject == root)
        ).first()
        if row is None:
            return None, [], [], ()
        merged = conn.execute(
            select(_links.c.alias)
            .where(_links.c.source_id == source_id, _links.c.canonical == root)
            .order_by(_links.c.alias)
        ).scalars()
        return (
            row,
            segments_of(conn, source_id, root),
            list(merged),
            read_source_traits(conn, source_id),
        )

    row, segments, merged, definitions = await database.read(read)
    if row is None:
        return None
    state = state_of(row)
    view = computed_view(
        state, datetime.now(UTC).date(), custom_values(state.accumulated.custom, definitions)
    )
    return Profile(
        subject=row.subject,
        segments=segments,
        merged=merged,
        traits=dict(row.traits),
        computed=msgspec.convert(view, Computed, from_attributes=True),
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


async def subject_view(
    database: Database, source_id: str, subject: str, consent: frozenset[str]
) -> tuple[str, ProfileView] | None:
    """What rules see of `subject` now (its merged profile, if stitched), with `consent` the
    purposes it allows now, and the subject of that profile (itself, or the one it was merged
    into); None for a subject the core has no profile of."""
    root = subject

    def read(conn: Connection) -> tuple[Any, list[str] | None, tuple[TraitDefinition, ...]]:
        nonlocal root
        root = resolve_one(conn, source_id, subject)
        row = conn.execute(
            select(_profiles).where(_profiles.c.source_id == source_id, _profiles.c.subject == root)
        ).first()
        if row is None:
            return None, None, ()
        state = state_of(row)
        segments = state.segments
        if segments is None:
            segments = segments_of(conn, source_id, root)
        return state, segments, read_source_traits(conn, source_id)

    state, segments, definitions = await database.read(read)
    if state is None:
        return None
    today = datetime.now(UTC).date()
    return root, ProfileView(
        traits=state.traits,
        computed=ComputedView(
            state, today, lambda: custom_values(state.accumulated.custom, definitions)
        ),
        event_counts=state.event_counts,
        day_counts=state.day_counts,
        segments=frozenset(segments or ()),
        consent=consent,
        today=today,
    )


async def last_event_times(
    database: Database, keys: list[tuple[str, str]], event: str
) -> dict[tuple[str, str], datetime]:
    """For each (source, pseudonym), the time of the latest `event` in its profile (the one it
    was merged into, if stitched); absent when it has none."""

    def read(conn: Connection) -> dict[tuple[str, str], datetime]:
        found: dict[tuple[str, str], datetime] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            roots = {key: (key[0], resolve_one(conn, key[0], key[1])) for key in chunk}
            rows = conn.execute(
                select(_profiles.c.source_id, _profiles.c.subject, _profiles.c.accumulated).where(
                    tuple_(_profiles.c.source_id, _profiles.c.subject).in_(set(roots.values()))
                )
            ).all()
            latest = {
                (row.source_id, row.subject): decode_accumulated(row.accumulated).event_last.get(
                    event
                )
                for row in rows
            }
            for key, root in roots.items():
                iso = latest.get(root)
                if iso:
                    found[key] = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        return found

    return await database.read(read)


async def interaction_sets(
    database: Database, keys: set[str]
) -> dict[tuple[str, str], dict[str, set[str]]]:
    """(source, interaction key) -> subject -> the items it interacted with, over every profile
    that allows personalization now (what recommendation models are built from: interactions
    are only kept from events that allowed it, and leave with a withdrawal or an opt-out)."""

    def read(conn: Connection) -> dict[tuple[str, str], dict[str, set[str]]]:
        found: dict[tuple[str, str], dict[str, set[str]]] = {}
        query = select(
            _profiles.c.source_id, _profiles.c.subject, _profiles.c.consent, _profiles.c.accumulated
        )
        for row in conn.execute(query):
            if PERSONALIZATION not in (row.consent or ()):
                continue  # withdrawn or opted out: its interactions leave the models
            items = (row.accumulated or {}).get("accumulated", {}).get("items") or {}
            for key in keys & items.keys():
                if items[key]:
                    found.setdefault((row.source_id, key), {})[row.subject] = set(items[key])
        return found

    return await database.read(read)
