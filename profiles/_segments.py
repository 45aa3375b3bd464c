"""Segment membership kept current as the core changes profiles.

A segment is evaluated for a subject whenever the core applies one of its events, in the same
transaction: never by rescanning every profile, and only the rules reading what changed.
Segments that refer to others are evaluated after them. Window slides and backfills are
`profiles._maintenance`'s.
"""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, cast, overload

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.engine import Connection

from bus import delete_many, insert_many, stored_time
from profiles._compiled import Predicate, compile_rule
from profiles._computed import ComputedView
from profiles._rules import (
    ProfileView,
    evaluation_order,
    rule_inputs,
)
from profiles._state import EVERYTHING, ProfileState
from profiles._tables import SegmentChangeRow, SegmentMemberRow, SegmentRow, changed_keys

_segments = cast(Table, SegmentRow.__table__)
_members = cast(Table, SegmentMemberRow.__table__)
_MEMBERSHIPS = select(_members.c.subject, _members.c.segment_key).where(
    _members.c.source_id == bindparam("source_id"),
    _members.c.subject.in_(bindparam("subjects", expanding=True)),
)
_changes = cast(Table, SegmentChangeRow.__table__)
# how long the core keeps the definitions it read before reading them again
DEFINITIONS_SECONDS = 1.0
_READING_CACHE_SIZE = 4096


def _no_custom(state: ProfileState) -> Mapping[str, Any]:
    return {}


class Rule(NamedTuple):
    key: str
    rule: dict[str, Any]
    inputs: frozenset[str]  # what it reads (rule_inputs)
    holds: Predicate  # the rule, compiled


class RuleSet(Sequence[Rule]):
    """The rules in evaluation order, indexed by the inputs they read."""

    def __init__(self, rules: list[Rule]) -> None:
        self._rules = rules
        self.keys = frozenset(rule.key for rule in rules)
        readers: dict[str, list[int]] = {}
        for index, rule in enumerate(rules):
            for name in rule.inputs:
                readers.setdefault(name, []).append(index)
        self._readers = {name: tuple(indexes) for name, indexes in readers.items()}
        # what `reading` answered, by the inputs asked: events touch few distinct sets of them
        self._reading: dict[frozenset[str], tuple[int, ...]] = {}

    def reading(self, inputs: Iterable[str]) -> tuple[int, ...]:
        """The indexes of the rules reading any of `inputs`, in evaluation order."""
        asked = frozenset(inputs)
        found = self._reading.get(asked)
        if found is None:
            indexes: set[int] = set()
            for name in asked:
                indexes.update(self._readers.get(name, ()))
            if len(self._reading) >= _READING_CACHE_SIZE:
                self._reading.clear()
            found = self._reading[asked] = tuple(sorted(indexes))
        return found

    def dependents(self, key: str) -> tuple[int, ...]:
        """The rules referring to segment `key` (all after it in evaluation order)."""
        return self._readers.get(f"segment:{key}", ())

    @overload
    def __getitem__(self, index: int) -> Rule: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Rule]: ...
    def __getitem__(self, index: int | slice) -> Rule | Sequence[Rule]:
        return self._rules[index]

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)  # Sequence's would call __getitem__ for each rule


class SegmentEvaluator:
    """Membership for the profiles a transaction touched: evaluated, compared, written, and
    each change logged with its time and cause."""

    def __init__(self) -> None:
        self._rules = RuleSet([])
        self._read_at = float("-inf")
        # (source, subject) whose memberships changed, until `take_changes`: what readers of
        # the profile (flag evaluations, their event streams) may need to hear
        self._changed: list[tuple[str, str]] = []

    def note_changes(
        self,
        source_id: str,
        current: Mapping[str, Set[str]],
        wanted: Mapping[str, Set[str]],
    ) -> None:
        self._changed.extend(
            (source_id, subject)
            for subject, before in current.items()
            if before != wanted.get(subject, set())
        )

    def take_changes(self) -> list[tuple[str, str]]:
        """The subjects whose memberships changed since the last call (committed or not:
        call it after the transaction that changed them)."""
        changed, self._changed = self._changed, []
        return changed

    def expire_definitions(self) -> None:
        """Read the definitions again at the next evaluation."""
        self._read_at = float("-inf")

    def definitions(self, conn: Connection, *, fresh: bool = False) -> RuleSet:
        """The rules in evaluation order, read again when older than DEFINITIONS_SECONDS (or
        `fresh`: a backfill must see the version it backfills)."""
        now = time.monotonic()
        if fresh or now - self._read_at >= DEFINITIONS_SECONDS:
            rules = dict(conn.execute(select(_segments.c.key, _segments.c.rule)).all())
            known = self._rules.keys
            self._rules = RuleSet(
                [
                    Rule(key, rules[key], rule_inputs(rules[key]), compile_rule(rules[key]))
                    for key in evaluation_order(rules)
                ]
            )
            self._read_at = now
            gone = known - self._rules.keys
            if gone:  # deleted since: what events applied meanwhile may have joined goes too
                forget_segments(conn, gone)
        return self._rules

    def update(
        self,
        conn: Connection,
        source_id: str,
        states: Iterable[ProfileState],
        causes: Mapping[str, str],
        custom: Callable[[ProfileState], Mapping[str, Any]] = _no_custom,
    ) -> None:
        """Re-evaluate `states` (only the rules whose inputs their changes touched), write the
        membership changes and set each state's `segments`; `causes[subject]` says why (for
        the change log). The states are written after this, with their memberships."""
        states = list(states)
        rules = self.definitions(conn)
        if not states:
            return
        if not rules:
            for state in states:
                state.segments = []
            return
        current = known_memberships(conn, source_id, states, rules.keys)
        today = datetime.now(UTC).date()
        wanted: dict[str, Set[str]] = {}
        changed: dict[str, Set[str]] = {}
        for state in states:
            had = current[state.subject]
            now = wanted[state.subject] = members_of(
                state, rules, today, functools.partial(custom, state), had
            )
            if now is not had and now != had:  # members_of answers `had` itself when unchanged
                changed[state.subject] = had
                state.segments = sorted(now)
            elif state.segments is None or len(state.segments) != len(now):
                # the row keeps them: written again when it named a deleted segment
                state.segments = sorted(now)
        if changed:
            write_changes(conn, source_id, changed, wanted, causes)
            self._changed.extend((source_id, subject) for subject in changed)


def known_memberships(
    conn: Connection, source_id: str, states: Iterable[ProfileState], keys: frozenset[str]
) -> dict[str, Set[str]]:
    """Each state's segments now: as its row keeps them (of the segments that still exist),
    or, for a row written before it kept them, as the membership table says."""
    current: dict[str, Set[str]] = {}
    unknown = []
    for state in states:
        if state.segments is None:
            unknown.append(state.subject)
        else:
            current[state.subject] = keys.intersection(state.segments)
    if unknown:
        current.update(current_memberships(conn, source_id, unknown))
    return current


def current_memberships(
    conn: Connection, source_id: str, subjects: list[str]
) -> dict[str, set[str]]:
    """Each subject's segments, from the membership table."""
    current: dict[str, set[str]] = {subject: set() for subject in subjects}
    for row in conn.execute(_MEMBERSHIPS, {"source_id": source_id, "subjects": subjects}):
        current[row.subject].add(row.segment_key)
    return current


def write_changes(
    conn: Connection,
    source_id: str,
    current: Mapping[str, Set[str]],
    wanted: Mapping[str, Set[str]],
    causes: Mapping[str, str],
    only: str | None = None,
) -> int:
    """Make memberships `wanted` (of the subjects in `current`; of segment `only` if given);
    log each change. Returns the number of changes."""
    at = stored_time(conn, datetime.now(UTC))
    joined, left, logged = [], [], []
    for subject, had in current.items():
        before, after = had, wanted.get(subject, set())
        if only is not None:
            before, after = before & {only}, after & {only}
        came, went = sorted(after - before), sorted(before - after)
        if not came and not went:
            continue
        joined += [(source_id, subject, key, at) for key in came]
        left += [(source_id, subject, key) for key in went]
        cause = causes.get(subject, "")[:160]
        logged.append((source_id, subject, changed_keys(came), changed_keys(went), cause, at))
    # skip_existing: a row a stale evaluation left of a segment deleted and made again
    insert_many(
        conn, _members, ("source_id", "subject", "segment_key", "since"), joined, skip_existing=True
    )
    delete_many(conn, _members, ("source_id", "subject", "segment_key"), left)
    insert_many(
        conn,
        _changes,
        ("source_id", "subject", "joined_keys", "left_keys", "cause", "at"),
        logged,
    )
    return len(joined) + len(left)


def forget_segments(conn: Connection, keys: Iterable[str]) -> None:
    """The memberships of deleted segments."""
    conn.execute(delete(_members).where(_members.c.segment_key.in_(sorted(keys))))


def members_of(
    state: ProfileState,
    rules: RuleSet,
    today: date,
    custom: Callable[[], Mapping[str, Any]] | None = None,
    before: Set[str] | None = None,
) -> Set[str]:
    """The segments `state` is in, each rule seeing the memberships decided before it.

    Given the memberships `before` and the inputs the state's changes `touched`, only the rules
    reading a touched input are evaluated, then those referring to a segment whose membership
    changed; the others keep their membership (`before` itself is returned when no rule reads
    what changed)."""
    every = before is None or EVERYTHING in state.touched
    reading: tuple[int, ...] = ()
    if not every:
        reading = rules.reading(state.touched)
        if not reading:
            return cast(Set[str], before)
    view = ProfileView(
        state.traits,
        ComputedView(state, today, custom or _nothing),
        state.event_counts,
        state.day_counts,
        set() if every else cast(Set[str], before),
        frozenset(state.consent),
        today,
    )
    if every:
        joined: set[str] = set()
        view.segments = joined
        for rule in rules:
            if rule.holds(view):
                joined.add(rule.key)
        return joined
    changed: set[str] | None = None  # a copy of `before`, made when a membership first moves
    pending = list(reading)  # in evaluation order: already a heap
    done = -1
    while pending:
        index = heapq.heappop(pending)
        if index == done:
            continue  # queued twice
        done = index
        rule = rules[index]
        now_in = rule.holds(view)
        if now_in != (rule.key in view.segments):
            if changed is None:
                changed = set(view.segments)
                view.segments = changed
            if now_in:
                changed.add(rule.key)
            else:
                changed.discard(rule.key)
            for dependent in rules.dependents(rule.key):
                heapq.heappush(pending, dependent)
    return cast(Set[str], before) if changed is None else changed


def _nothing() -> Mapping[str, Any]:
    return {}
