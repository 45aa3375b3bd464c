"""The core's event consumer: dedupe by message id, stitch identities, apply events and control
messages to profiles, and keep segment memberships current, in one transaction.

Delivery is at least once; applying a message and recording its id commit together, so a
redelivered message (after a crash before the bus learnt of it) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.engine import Connection

from bus import (
    BusMessage,
    BusPayload,
    ConsentChanged,
    Database,
    Erase,
    EventEnvelope,
    OptOut,
    as_utc,
    decode_payload,
)
from profiles._apply import ApplyOptions, apply_event, merge_states, subject_key
from profiles._identity import IdentityGraph, stitch_pair
from profiles._profile_rows import ProfileRows, erase_subject
from profiles._segments import SegmentEvaluator
from profiles._state import (
    DEFAULT_MAX_KEYS,
    DEFAULT_SESSION_GAP_SECONDS,
    EVERYTHING,
    ProfileState,
    clock,
)
from profiles._tables import ErasureRow, ProcessedMessage
from profiles._traits import SourceTraits

log = structlog.get_logger("consentgate.profiles")

_processed = cast(Table, ProcessedMessage.__table__)
_erasures = cast(Table, ErasureRow.__table__)
# The hot statements, built once: building one (and its cache key) cost more than running it.
_ERASED = select(_erasures.c.subject, _erasures.c.erased_at).where(
    _erasures.c.source_id == bindparam("source_id"),
    _erasures.c.subject.in_(bindparam("subjects", expanding=True)),
)
_PROCESSED = select(_processed.c.source_id, _processed.c.message_id).where(
    _processed.c.source_id == bindparam("source_id"),
    _processed.c.message_id.in_(bindparam("message_ids", expanding=True)),
)
_INSERT_PROCESSED = insert(_processed)


class ProfileConsumer:
    """The bus handler of the profile core."""

    def __init__(
        self,
        database: Database,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        session_gap_seconds: float = DEFAULT_SESSION_GAP_SECONDS,
        on_capped: Callable[[str, int], None] | None = None,
        interactions: Callable[[], frozenset[tuple[str, str]]] = frozenset,
    ) -> None:
        """`on_capped(map, n)` hears of keys a full profile map folded or left out."""
        self._db = database
        self.segments = SegmentEvaluator()
        self.traits = SourceTraits()
        self._options = ApplyOptions(max_keys=max_keys, session_gap_seconds=session_gap_seconds)
        self._on_capped = on_capped
        # the (event, property) pairs to record items of: what readers recommend from
        self._interactions = interactions
        self.rows = ProfileRows(postgres=database.dialect_name == "postgresql")
        # (source, pseudonym) whose profile a transaction changed (until `take_touched`): what
        # caches of profiles must forget once it committed
        self._touched: list[tuple[str, str]] = []
        self._erasures_exist: bool | None = None  # learnt once, then kept by _run

    def options(self, conn: Connection, source_id: str) -> ApplyOptions:
        return ApplyOptions(
            max_keys=self._options.max_keys,
            session_gap_seconds=self._options.session_gap_seconds,
            definitions=self.traits.definitions(conn, source_id),
            interactions=self._interactions(),
        )

    async def __call__(self, messages: Sequence[BusMessage]) -> None:
        work = self.prepare(messages)
        if work is not None:
            await self._db.transaction(work)

    def prepare(self, messages: Sequence[BusMessage]) -> Callable[[Connection], None] | None:
        """Decode `messages` here; the returned unit applies them inside a transaction (the
        caller's, so that other writers can share its commit). Events and control messages
        apply in the order they were published."""
        steps = [decode_payload(message) for message in messages]
        if not steps:
            return None
        return lambda conn: self._run(conn, steps)

    def _run(self, conn: Connection, steps: list[BusPayload]) -> None:
        pending: list[EventEnvelope] = []
        for step in steps:
            if isinstance(step, EventEnvelope):
                pending.append(step)
                continue
            if pending:
                self._apply_new(conn, pending)
                pending = []
            match step:  # the whole control-message union, in one place
                case Erase():
                    erased = erase_subject(conn, step)
                    self._touched.extend((step.source_id, subject) for subject in erased)
                    self._erasures_exist = True
                case ConsentChanged():
                    self._consent(conn, step.source_id, step.subjects, step.granted, step.refused,
                                  step.at, f"consent:{step.change_id}")  # fmt: skip
                case OptOut():
                    self._consent(conn, step.source_id, step.subjects, (), step.purposes,
                                  step.at, f"opt_out:{step.request_id}")  # fmt: skip
        if pending:
            self._apply_new(conn, pending)

    def take_touched(self) -> list[tuple[str, str]]:
        """The pseudonyms whose profiles changed since the last call."""
        touched, self._touched = self._touched, []
        return touched

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
        by_source: dict[str, list[EventEnvelope]] = {}
        for envelope in fresh:
            if subject_key(envelope) is not None:  # the gateway rejects the others
                by_source.setdefault(envelope.source_id, []).append(envelope)
        for source_id, events in by_source.items():
            self._apply(conn, source_id, events)

    def _apply(self, conn: Connection, source_id: str, envelopes: list[EventEnvelope]) -> None:
        mentioned = {p for e in envelopes for p in (e.subject, e.anonymous, e.previous) if p}
        graph = IdentityGraph(conn, source_id, mentioned)
        envelopes = self._skip_erased(conn, source_id, envelopes, graph)
        if not envelopes:
            return
        options = self.options(conn, source_id)
        states = self.rows.load(conn, source_id, {graph.resolve(p) for p in mentioned})
        touched: dict[str, str] = {}  # subject -> the last message that changed it
        merged_away: dict[str, str] = {}
        for envelope in envelopes:
            pair = stitch_pair(envelope)
            if pair is not None:
                self._stitch(graph, states, envelope, pair, options, merged_away)
            key = graph.resolve(cast(str, subject_key(envelope)))
            states[key] = apply_event(states.get(key), envelope, key, options)
            touched[key] = f"event:{envelope.message_id}"
        self._touched.extend((source_id, p) for p in {*touched, *merged_away, *mentioned})
        kept = [states[subject] for subject in touched if subject not in merged_away]
        for state in kept:
            self._report_capped(state)
        if merged_away:
            self.rows.remove(conn, source_id, merged_away)
        graph.save()
        self.segments.update(
            conn, source_id, kept, touched, lambda state: self.traits.values(state, options)
        )
        self.rows.upsert(conn, source_id, kept)  # with the memberships just decided

    def _stitch(
        self,
        graph: IdentityGraph,
        states: dict[str, ProfileState],
        envelope: EventEnvelope,
        pair: tuple[str, str],
        options: ApplyOptions,
        merged_away: dict[str, str],
    ) -> None:
        other, subject = pair
        source, target = graph.resolve(other), graph.resolve(subject)
        if source == target:
            return
        if envelope.type == "identify":
            folded = states.get(source)
            if graph.is_linked(other) or (folded is not None and folded.identified):
                return  # already someone's (a shared device): users merge only by alias
        graph.link(source, target, envelope.message_id)
        folded = states.pop(source, None)
        if folded is not None:
            existing = states.get(target)
            if existing is None:
                folded.subject = target
                folded.segments = []  # its memberships end with its row (below)
                folded.touch(EVERYTHING)
                states[target] = folded
            else:
                states[target] = merge_states(existing, folded, options)
            merged_away[source] = f"merge:{envelope.message_id}"
        merged_away.pop(target, None)

    def _skip_erased(
        self,
        conn: Connection,
        source_id: str,
        envelopes: list[EventEnvelope],
        graph: IdentityGraph,
    ) -> list[EventEnvelope]:
        """Without the events of erased subjects that were received before their erasure."""
        if self._erasures_exist is None:
            self._erasures_exist = (
                conn.execute(select(_erasures.c.subject).limit(1)).first() is not None
            )
        if not self._erasures_exist:
            return envelopes
        candidates = {
            name
            for e in envelopes
            for p in (e.subject, e.anonymous, e.previous)
            if p
            for name in (p, graph.resolve(p))
        }
        erased = {
            row.subject: as_utc(row.erased_at)
            for row in conn.execute(_ERASED, {"source_id": source_id, "subjects": list(candidates)})
        }
        if not erased:
            return envelopes

        def before_erasure(envelope: EventEnvelope) -> bool:
            received = as_utc(envelope.received_at)
            return any(
                received <= erased[name]
                for p in (envelope.subject, envelope.anonymous, envelope.previous)
                if p
                for name in (p, graph.resolve(p))
                if name in erased
            )

        return [envelope for envelope in envelopes if not before_erasure(envelope)]

    def _consent(
        self,
        conn: Connection,
        source_id: str,
        subjects: Sequence[str],
        granted: Sequence[str],
        refused: Sequence[str],
        at: datetime,
        cause: str,
    ) -> None:
        """A consent change or opt-out: the profile's consent now, its segments re-evaluated."""
        graph = IdentityGraph(conn, source_id, subjects)
        states = self.rows.load(conn, source_id, {graph.resolve(s) for s in subjects})
        if not states:
            return
        stamp = _stamp(at, cause)
        self._touched.extend((source_id, p) for p in {*states, *subjects})
        for state in states.values():
            if stamp > state.consent_clock:
                state.consent = sorted((set(state.consent) | set(granted)) - set(refused))
                state.consent_clock = stamp
                state.touch("consent")
        changed = list(states.values())
        options = self.options(conn, source_id)
        self.segments.update(
            conn,
            source_id,
            changed,
            {state.subject: cause for state in changed},
            lambda state: self.traits.values(state, options),
        )
        self.rows.upsert(conn, source_id, changed)


def _stamp(at: datetime, cause: str) -> str:
    return clock(as_utc(at), cause)


def _claim_new(conn: Connection, envelopes: list[EventEnvelope]) -> list[EventEnvelope]:
    """Record the message ids not seen before and return their envelopes, in order."""
    unique: dict[tuple[str, str], EventEnvelope] = {}
    by_source: dict[str, list[str]] = {}
    for envelope in envelopes:
        key = (envelope.source_id, envelope.message_id)
        if key not in unique:
            unique[key] = envelope
            by_source.setdefault(envelope.source_id, []).append(envelope.message_id)
    # one source and a list of ids, not a list of (source, id) pairs: PostgreSQL plans a
    # row-value IN of 500 pairs in about 50 ms, `= ANY` of 500 ids in a quarter of one
    seen = {
        (row.source_id, row.message_id)
        for source_id, message_ids in by_source.items()
        for row in conn.execute(_PROCESSED, {"source_id": source_id, "message_ids": message_ids})
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
