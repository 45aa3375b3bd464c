"""Segment definitions (validated: rules, references, cycles, a cap), their versions and
backfill progress, and what admins read: members, the change log, membership of a subject."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from profiles._rules import RuleError, evaluation_order, segment_references, validate_rule
from profiles._tables import SegmentChangeRow, SegmentMemberRow, SegmentRow, changed_keys

_segments = cast(Table, SegmentRow.__table__)
_members = cast(Table, SegmentMemberRow.__table__)
_changes = cast(Table, SegmentChangeRow.__table__)
MAX_SEGMENTS = 500
SEGMENT_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    name: str
    rule: dict[str, Any]
    version: int
    updated_at: datetime
    members: int | None = None  # on a single read: subjects in it now
    backfill: Backfill | None = None  # on a single read: the backfill of this version


class Member(msgspec.Struct, frozen=True, kw_only=True):
    source_id: str
    subject: str  # a pseudonym
    since: datetime


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """A subject joining or leaving the segment, and why: `event:<messageId>`, `merge:…`,
    `consent:…`, `opt_out:…`, `window:<day>`, `backfill:<key>@<version>`."""

    id: int
    source_id: str
    subject: str
    joined: bool
    cause: str
    at: datetime


class Backfill(msgspec.Struct, frozen=True, kw_only=True):
    """This version's evaluation over the profiles that existed before it."""

    done: int
    total: int
    finished: bool


class SegmentStore:
    """Definitions (validated: rules, references, cycles, a cap) and membership counts."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def put(self, key: str, name: str, rule: dict[str, Any]) -> Segment:
        if not SEGMENT_KEY.fullmatch(key):
            raise RuleError("a segment key is 1 to 100 of a-z 0-9 _ . - at $.key")
        if not name or len(name) > 200:
            raise RuleError("a name of 1 to 200 characters at $.name")
        validate_rule(rule)

        def work(conn: Connection) -> Segment:
            rules = dict(conn.execute(select(_segments.c.key, _segments.c.rule)).all())
            if key not in rules and len(rules) >= MAX_SEGMENTS:
                raise RuleError(f"at most {MAX_SEGMENTS} segments at $.key")
            evaluation_order({**rules, key: rule})  # unknown references and cycles
            now = datetime.now(UTC)
            version = (
                conn.execute(select(_segments.c.version).where(_segments.c.key == key)).scalar()
                or 0
            ) + 1
            values = {
                "name": name,
                "rule": rule,
                "version": version,
                "updated_at": now,
                # a new version is backfilled over the existing profiles from the start
                "backfill_done": 0,
                "backfill_total": 0,
                "backfill_after": "",
            }
            if version == 1:
                conn.execute(insert(_segments).values(key=key, **values))
            else:
                conn.execute(update(_segments).where(_segments.c.key == key).values(values))
            return Segment(key=key, name=name, rule=rule, version=version, updated_at=now)

        return await self._db.transaction(work)

    async def get(self, key: str) -> Segment | None:
        def read(conn: Connection) -> Segment | None:
            row = conn.execute(select(_segments).where(_segments.c.key == key)).first()
            if row is None:
                return None
            count = conn.execute(
                select(func.count()).select_from(_members).where(_members.c.segment_key == key)
            ).scalar_one()
            backfill = Backfill(
                done=row.backfill_done,
                total=max(row.backfill_total, row.backfill_done),
                finished=row.backfilled_version >= row.version,
            )
            return msgspec.structs.replace(_segment(row, members=int(count)), backfill=backfill)

        return await self._db.read(read)

    async def listing(self, limit: int = MAX_SEGMENTS, after: str = "") -> list[Segment]:
        """Up to `limit` segments by key, those after `after`."""
        query = (
            select(_segments).where(_segments.c.key > after).order_by(_segments.c.key).limit(limit)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [_segment(row) for row in rows]

    async def keys(self) -> list[str]:
        """The keys of the segments that exist now."""
        query = select(_segments.c.key)
        return list(await self._db.read(lambda conn: conn.execute(query).scalars().all()))

    async def members(
        self, key: str, limit: int, after: tuple[str, str] = ("", "")
    ) -> list[Member]:
        """Up to `limit` members of segment `key` by (source, pseudonym), after `after`."""
        query = (
            select(_members.c.source_id, _members.c.subject, _members.c.since)
            .where(
                _members.c.segment_key == key,
                tuple_(_members.c.source_id, _members.c.subject) > after,
            )
            .order_by(_members.c.source_id, _members.c.subject)
            .limit(limit)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [
            Member(source_id=r.source_id, subject=r.subject, since=as_utc(r.since)) for r in rows
        ]

    async def changes(self, key: str, limit: int, before: int | None = None) -> list[Change]:
        """Up to `limit` joins and leaves of segment `key`, newest first, older than `before`."""
        keys = changed_keys([key])
        query = select(_changes).where(
            or_(
                _changes.c.joined_keys.contains(keys, autoescape=True),
                _changes.c.left_keys.contains(keys, autoescape=True),
            )
        )
        if before is not None:
            query = query.where(_changes.c.id < before)
        query = query.order_by(_changes.c.id.desc()).limit(limit)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [
            Change(
                id=r.id,
                source_id=r.source_id,
                subject=r.subject,
                joined=keys in r.joined_keys,
                cause=r.cause,
                at=as_utc(r.at),
            )
            for r in rows
        ]

    async def delete(
        self, key: str, readers: Callable[[Connection], Iterable[tuple[str, Any]]] | None = None
    ) -> bool:
        """Remove a segment and its memberships; refused while another segment refers to it,
        or a rule of `readers` (where, rule), read in the same transaction: flags and flows,
        which this package does not know."""

        def work(conn: Connection) -> bool:
            rules = dict(conn.execute(select(_segments.c.key, _segments.c.rule)).all())
            if key not in rules:
                return False
            rules.pop(key)
            evaluation_order(rules)  # names the segment that still refers to this one
            for where, rule in readers(conn) if readers is not None else ():
                if key in segment_references(rule):
                    raise RuleError(f"segment {key!r} is used at {where}")
            conn.execute(delete(_members).where(_members.c.segment_key == key))
            conn.execute(delete(_segments).where(_segments.c.key == key))
            return True

        return await self._db.transaction(work)


def _segment(row: Any, members: int | None = None) -> Segment:
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return Segment(
        key=row.key,
        name=row.name,
        rule=dict(row.rule),
        version=row.version,
        updated_at=updated,
        members=members,
    )


def segments_of(conn: Connection, source_id: str, subject: str) -> list[str]:
    query = (
        select(_members.c.segment_key)
        .where(_members.c.source_id == source_id, _members.c.subject == subject)
        .order_by(_members.c.segment_key)
    )
    return [row.segment_key for row in conn.execute(query)]
