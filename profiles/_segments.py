"""Segments: their definitions, and membership kept current as events touch subjects.

A segment is evaluated for a subject whenever the core applies one of its events, in the same
transaction: never by rescanning every profile. Segments that refer to others are evaluated
after them. (Re-evaluation when a time window slides with no event, and the backfill of a new
segment over existing profiles, are not built yet.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, delete, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection

from bus import Database
from profiles._apply import ProfileState
from profiles._rules import ProfileView, RuleError, evaluate, evaluation_order, validate_rule
from profiles._tables import SegmentMemberRow, SegmentRow

_segments = cast(Table, SegmentRow.__table__)
_members = cast(Table, SegmentMemberRow.__table__)
MAX_SEGMENTS = 500
SEGMENT_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
# how long the core keeps the definitions it read before reading them again
DEFINITIONS_SECONDS = 1.0


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    name: str
    rule: dict[str, Any]
    version: int
    updated_at: datetime
    members: int | None = None  # on a single read: subjects in it now


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
            values = {"name": name, "rule": rule, "version": version, "updated_at": now}
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
            return _segment(row, members=int(count))

        return await self._db.read(read)

    async def listing(self) -> list[Segment]:
        rows = await self._db.read(
            lambda conn: conn.execute(select(_segments).order_by(_segments.c.key)).all()
        )
        return [_segment(row) for row in rows]

    async def delete(self, key: str) -> bool:
        """Remove a segment and its memberships; refused while another refers to it."""

        def work(conn: Connection) -> bool:
            rules = dict(conn.execute(select(_segments.c.key, _segments.c.rule)).all())
            if key not in rules:
                return False
            rules.pop(key)
            evaluation_order(rules)  # names the segment that still refers to this one
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


class SegmentEvaluator:
    """Membership for the profiles a transaction touched: evaluated, compared, written."""

    def __init__(self) -> None:
        self._rules: list[tuple[str, dict[str, Any]]] = []
        self._read_at = float("-inf")

    def _definitions(self, conn: Connection) -> list[tuple[str, dict[str, Any]]]:
        now = time.monotonic()
        if now - self._read_at >= DEFINITIONS_SECONDS:
            rules = dict(conn.execute(select(_segments.c.key, _segments.c.rule)).all())
            self._rules = [(key, rules[key]) for key in evaluation_order(rules)]
            self._read_at = now
        return self._rules

    def update(self, conn: Connection, source_id: str, states: Iterable[ProfileState]) -> None:
        states = list(states)
        rules = self._definitions(conn)
        if not rules or not states:
            return
        subjects = [(source_id, state.subject) for state in states]
        current: dict[str, set[str]] = {}
        for row in conn.execute(
            select(_members.c.subject, _members.c.segment_key).where(
                tuple_(_members.c.source_id, _members.c.subject).in_(subjects)
            )
        ):
            current.setdefault(row.subject, set()).add(row.segment_key)
        now = datetime.now(UTC)
        joined, left = [], []
        for state in states:
            now_in = members_of(state, rules, now.date())
            before = current.get(state.subject, set())
            joined += [(state.subject, key) for key in sorted(now_in - before)]
            left += [(state.subject, key) for key in sorted(before - now_in)]
        if joined:
            conn.execute(
                insert(_members),
                [
                    {"source_id": source_id, "subject": s, "segment_key": k, "since": now}
                    for s, k in joined
                ],
            )
        for subject, key in left:
            conn.execute(
                delete(_members).where(
                    _members.c.source_id == source_id,
                    _members.c.subject == subject,
                    _members.c.segment_key == key,
                )
            )


def members_of(
    state: ProfileState, rules: list[tuple[str, dict[str, Any]]], today: date
) -> set[str]:
    """The segments `state` is in, each rule seeing the memberships decided before it."""
    members: set[str] = set()
    for key, rule in rules:
        view = ProfileView(
            traits=state.traits,
            computed={"first_seen": state.first_seen, "last_seen": state.last_seen},
            event_counts=state.event_counts,
            day_counts=state.day_counts,
            segments=frozenset(members),
            consent=frozenset(state.consent),
            today=today,
        )
        if evaluate(rule, view):
            members.add(key)
    return members


def segments_of(conn: Connection, source_id: str, subject: str) -> list[str]:
    query = (
        select(_members.c.segment_key)
        .where(_members.c.source_id == source_id, _members.c.subject == subject)
        .order_by(_members.c.segment_key)
    )
    return [row.segment_key for row in conn.execute(query)]
