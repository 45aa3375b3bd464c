"""The core's background work on segments: windows that slide with no event, and backfills.

- Once per UTC day, the subjects active within the longest window (plus the days since the last
  sweep) are re-evaluated: someone who did nothing for 7 days leaves "active in the last 7 days"
  (and joins "inactive") without sending an event. Profiles idle for longer were already
  re-evaluated when their last day left every window.
- A new or edited segment is evaluated over every existing profile, a page per transaction,
  resumable after a restart; `GET /v1/segments/{key}` shows `backfill: {"done", "total"}`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select, tuple_, update
from sqlalchemy.engine import Connection

from bus import Database
from profiles._consumer import ProfileConsumer
from profiles._profile_rows import state_of
from profiles._rules import MAX_WITHIN_DAYS
from profiles._segments import known_memberships, members_of, write_changes
from profiles._state import ProfileState
from profiles._tables import CoreMarkRow, ProfileRow, SegmentMemberRow, SegmentRow

_profiles = cast(Table, ProfileRow.__table__)
_segments = cast(Table, SegmentRow.__table__)
_members = cast(Table, SegmentMemberRow.__table__)
_marks = cast(Table, CoreMarkRow.__table__)
BACKFILL_PAGE = 500
_SWEPT = "windows_swept"
_START = "\x00"  # backfill_after: started, nothing done yet; else "source\x00subject" reached


class SegmentMaintenance:
    def __init__(self, database: Database, consumer: ProfileConsumer) -> None:
        self._db = database
        self._consumer = consumer

    def _evaluate(
        self,
        conn: Connection,
        rows: Sequence[Any],
        cause: str,
        only: str | None = None,
        today: date | None = None,
    ) -> int:
        """Re-evaluate the profiles of `rows` (any sources); returns the membership changes."""
        rules = self._consumer.segments.definitions(conn, fresh=True)
        today = today or datetime.now(UTC).date()
        by_source: dict[str, list[ProfileState]] = {}
        for row in rows:
            by_source.setdefault(row.source_id, []).append(state_of(row))
        changes = 0
        for source_id, states in by_source.items():
            options = self._consumer.options(conn, source_id)
            current = known_memberships(conn, source_id, states, rules.keys)
            if only is not None:
                current = _as_in_table(conn, source_id, only, current)
            wanted = {  # every rule, for every state (nothing `touched`: time moved, or rules)
                state.subject: members_of(
                    state,
                    rules,
                    today,
                    functools.partial(self._consumer.traits.values, state, options),
                )
                for state in states
            }
            causes = dict.fromkeys(current, cause)
            changes += write_changes(conn, source_id, current, wanted, causes, only=only)
            self._consumer.segments.note_changes(source_id, current, wanted)
            moved = []  # the rows whose kept memberships change
            for state in states:
                before, after = current[state.subject], wanted[state.subject]
                if only is not None:
                    after = (before - {only}) | (after & {only})
                if state.segments is None or set(state.segments) != after:
                    state.segments = sorted(after)
                    moved.append(state)
            self._consumer.rows.upsert(conn, source_id, moved)
        return changes

    async def reevaluate(self, source_id: str) -> int:
        """Evaluate every rule for every profile of a source; returns the membership changes
        (none, when the incremental evaluation kept them right)."""

        def work(conn: Connection) -> int:
            rows = conn.execute(select(_profiles).where(_profiles.c.source_id == source_id)).all()
            return self._evaluate(conn, rows, "reevaluation") if rows else 0

        return await self._db.transaction(work)

    async def sweep_windows(self, today: date | None = None) -> int | None:
        """Re-evaluate recently active subjects once per day; None when already swept today."""
        today = today or datetime.now(UTC).date()

        def work(conn: Connection) -> int | None:
            swept = conn.execute(select(_marks.c.value).where(_marks.c.name == _SWEPT)).scalar()
            if swept == today.isoformat():
                return None
            last = date.fromisoformat(swept) if swept else today - timedelta(days=1)
            since = min(last, today - timedelta(days=1)) - timedelta(days=MAX_WITHIN_DAYS + 1)
            changes = 0
            after = ("", "")
            while True:
                rows = conn.execute(
                    select(_profiles)
                    .where(
                        _profiles.c.last_seen >= datetime.combine(since, datetime.min.time(), UTC),
                        tuple_(_profiles.c.source_id, _profiles.c.subject) > after,
                    )
                    .order_by(_profiles.c.source_id, _profiles.c.subject)
                    .limit(BACKFILL_PAGE)
                ).all()
                if not rows:
                    break
                changes += self._evaluate(conn, rows, f"window:{today.isoformat()}", today=today)
                after = (rows[-1].source_id, rows[-1].subject)
            _set_mark(conn, _SWEPT, today.isoformat())
            return changes

        return await self._db.transaction(work)

    async def backfill_step(self) -> bool:
        """One page of the oldest unfinished backfill; False when none is left."""

        def work(conn: Connection) -> bool:
            segment = conn.execute(
                select(_segments)
                .where(_segments.c.backfilled_version < _segments.c.version)
                .order_by(_segments.c.updated_at)
                .limit(1)
            ).first()
            if segment is None:
                return False
            values: dict[str, Any] = {}
            query = select(_profiles).order_by(_profiles.c.source_id, _profiles.c.subject)
            done = segment.backfill_done
            if segment.backfill_after == "":  # starting
                done = 0
                total = conn.execute(select(func.count()).select_from(_profiles)).scalar_one()
                values["backfill_total"] = total
            elif segment.backfill_after != _START:
                source_id, _, subject = segment.backfill_after.partition(_START)
                query = query.where(
                    tuple_(_profiles.c.source_id, _profiles.c.subject) > (source_id, subject)
                )
            rows = conn.execute(query.limit(BACKFILL_PAGE)).all()
            self._evaluate(conn, rows, f"backfill:{segment.key}@{segment.version}", segment.key)
            values["backfill_done"] = done + len(rows)
            if len(rows) < BACKFILL_PAGE:
                values["backfilled_version"] = segment.version
                values["backfill_after"] = ""
            else:
                values["backfill_after"] = rows[-1].source_id + _START + rows[-1].subject
            conn.execute(
                update(_segments)
                .where(_segments.c.key == segment.key, _segments.c.version == segment.version)
                .values(values)
            )
            return True

        return await self._db.transaction(work)


def _as_in_table(
    conn: Connection, source_id: str, key: str, current: dict[str, AbstractSet[str]]
) -> dict[str, AbstractSet[str]]:
    """`current`, with membership of segment `key` as its table says: a profile row can
    still list a segment deleted and then made again under the same key, which the backfill
    of the new one must not take for a member."""
    members = set(
        conn.execute(
            select(_members.c.subject).where(
                _members.c.source_id == source_id,
                _members.c.segment_key == key,
                _members.c.subject.in_(list(current)),
            )
        ).scalars()
    )
    return {
        subject: (had - {key}) | ({key} if subject in members else set())
        for subject, had in current.items()
    }


def _set_mark(conn: Connection, name: str, value: str) -> None:
    updated = conn.execute(update(_marks).where(_marks.c.name == name).values(value=value))
    if not updated.rowcount:
        conn.execute(_marks.insert().values(name=name, value=value))
