"""The consent history in the database, and a cache of current states for the hot path.

Records are only ever inserted. A write replaces the cached state of its subject as soon as
it commits, so the very next event of this process sees it. Reads that raced with a write
do not put a stale state back: each subject has a generation, bumped by every write, and a
read fills the cache only if the generation it started with is still current. The generations
are bounded: past a limit they are all forgotten at once and the store's epoch moves on, so
that reads started before that fill nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bus import (
    AlsoInCommit,
    BusMessage,
    Database,
    as_utc,
    execute_compiled,
    insert_many,
    stored_time,
)
from consent._decision import Jurisdiction, decide
from consent._purposes import ConsentConfig
from consent._records import (
    SUPPRESSION,
    ConsentRecord,
    ConsentState,
    PurposeState,
    with_records,
)
from consent._signals import NO_SIGNALS
from consent._tables import ConsentCurrentRow, ConsentRecordRow

_records = cast(Table, ConsentRecordRow.__table__)
_current = cast(Table, ConsentCurrentRow.__table__)
# The hot statements, built once: building one (and its cache key) cost more than running it.
_CURRENT_STATES = select(_current).where(
    _current.c.source_id == bindparam("source_id"),
    _current.c.subject.in_(bindparam("subjects", expanding=True)),
)
CONSENT_CACHE_LIMIT = 200_000

SubjectKey = tuple[str, str]  # (source_id, subject pseudonym)


# commits `messages` durably with `work(conn)` in the same transaction (the bus's publish)
CommitWith = Callable[[Sequence[BusMessage], AlsoInCommit], Awaitable[None]]
Announcer = Callable[[Sequence[ConsentRecord]], Sequence[BusMessage]]


class ConsentStore:
    def __init__(
        self,
        database: Database,
        *,
        cache_limit: int = CONSENT_CACHE_LIMIT,
        commit_with: CommitWith | None = None,
    ) -> None:
        """With `commit_with` (the bus's publish), an append commits its records, the work
        given with them (an audit entry) and the announcers' messages in one transaction,
        shared with whatever else the bus commits then: one durable commit for all."""
        self._db = database
        self._commit_with = commit_with
        self._cache: OrderedDict[SubjectKey, ConsentState] = OrderedDict()
        self._generation: dict[SubjectKey, int] = {}
        self._epoch = 0
        self._cache_limit = cache_limit
        # (source_id, subject) -> (the state, config, jurisdiction it was decided from, allowed)
        self._allowed: dict[
            SubjectKey, tuple[ConsentState, ConsentConfig, Jurisdiction, frozenset[str]]
        ] = {}
        self._listeners: list[Callable[[Sequence[ConsentRecord]], Awaitable[None]]] = []
        self._announcers: list[Announcer] = []

    def on_change(self, listener: Callable[[Sequence[ConsentRecord]], Awaitable[None]]) -> None:
        """Call `listener(records)` after each append has committed."""
        self._listeners.append(listener)

    def announce_with(self, announcer: Announcer) -> None:
        """Commit `announcer(records)`'s messages with each append (needs `commit_with`)."""
        if self._commit_with is None:
            raise ValueError("announcing needs a store that commits through the bus")
        self._announcers.append(announcer)

    async def append(
        self, records: Sequence[ConsentRecord], also: AlsoInCommit | None = None
    ) -> None:
        """Insert `records` (one subject), with `also(conn)` in the same transaction."""
        if not records:
            raise ValueError("no consent records to append")
        key = (records[0].source_id, records[0].subject)
        if any((r.source_id, r.subject) != key for r in records):
            raise ValueError("one append holds the records of one subject")
        self._bump(key)
        # A cached state takes the records in memory; only an uncached one is read back (in
        # the same transaction) so that the next event of the subject finds it cached.
        read_back = key not in self._cache
        states: list[ConsentState] = []

        def work(conn: Connection) -> None:
            _insert(conn, records)
            if read_back:
                states.append(_read_states(conn, key[0], [key[1]]).get(key[1], {}))
            if also is not None:
                also(conn)

        if self._commit_with is None:
            await self._db.transaction(work)
        else:
            messages = [m for announce in self._announcers for m in announce(records)]
            await self._commit_with(messages, work)
        self._bump(key)
        cached = self._cache.get(key)
        if cached is not None:
            self._put(key, with_records(cached, records))
        elif states:
            self._put(key, states[0])
        for listener in self._listeners:
            await listener(records)

    async def suppressions(self, source_id: str | None = None) -> list[ConsentRecord]:
        """Each suppressed-or-lifted subject's latest suppression record, oldest first."""
        return await self._db.read(lambda conn: _read_suppressions(conn, source_id))

    async def history(self, source_id: str, subject: str) -> list[ConsentRecord]:
        return await self._db.read(lambda conn: _read_history(conn, (source_id, subject)))

    async def states(self, source_id: str, subjects: Iterable[str]) -> dict[str, ConsentState]:
        """Current states of `subjects`, from the cache where it can."""
        found: dict[str, ConsentState] = {}
        missing: list[str] = []
        for subject in subjects:
            state = self._cache.get((source_id, subject))
            if state is None:
                missing.append(subject)
            else:
                found[subject] = state
        if missing:
            epoch = self._epoch
            started = {s: self._generation.get((source_id, s), 0) for s in missing}
            loaded = await self._db.read(lambda conn: _read_states(conn, source_id, missing))
            for subject in missing:
                state = loaded.get(subject, {})
                found[subject] = state
                key = (source_id, subject)
                if self._epoch == epoch and self._generation.get(key, 0) == started[subject]:
                    self._put(key, state)
        return found

    def allowed(
        self,
        source_id: str,
        subject: str,
        stored: ConsentState,
        jurisdiction: Jurisdiction,
        config: ConsentConfig,
    ) -> frozenset[str]:
        """The purposes `stored` (the subject's state, from `states`) allows with no signal
        and no event time. Remembered with the state object it was decided from: a state is
        replaced when it changes, never changed in place (`with_records`), so the same object
        always allows the same; a new state, config or jurisdiction decides again."""
        key = (source_id, subject)
        memo = self._allowed.get(key)
        if memo is not None and memo[0] is stored and memo[1] is config and memo[2] == jurisdiction:
            return memo[3]
        allowed = frozenset(
            purpose
            for purpose in config.known_purposes()
            if decide((purpose,), NO_SIGNALS, jurisdiction, stored=stored).action != "drop"
        )
        if len(self._allowed) >= self._cache_limit:
            self._allowed.clear()
        self._allowed[key] = (stored, config, jurisdiction, allowed)
        return allowed

    def invalidate(self, source_id: str, subject: str) -> None:
        """Forget a cached state (a change made elsewhere: another replica, erasure)."""
        key = (source_id, subject)
        self._bump(key)
        self._cache.pop(key, None)

    def _bump(self, key: SubjectKey) -> None:
        if len(self._generation) >= self._cache_limit:
            self._generation.clear()
            self._epoch += 1
        self._generation[key] = self._generation.get(key, 0) + 1

    def _put(self, key: SubjectKey, state: ConsentState) -> None:
        self._cache[key] = state
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_limit:
            self._cache.popitem(last=False)


def _to_record(row: Any) -> ConsentRecord:
    values = row._mapping
    return ConsentRecord(
        record_id=values["record_id"],
        source_id=values["source_id"],
        subject=values["subject"],
        purpose=values["purpose"],
        granted=values["granted"],
        source=values["signal_source"],
        policy_version=values["policy_version"],
        jurisdiction=values["jurisdiction"],
        collected_at=as_utc(values["collected_at"]),
        recorded_at=as_utc(values["recorded_at"]),
        ip_truncated=values["ip_truncated"],
        user_agent_hash=values["user_agent_hash"],
    )


_RECORD_COLUMNS = (
    "record_id",
    "source_id",
    "subject",
    "purpose",
    "granted",
    "signal_source",
    "policy_version",
    "jurisdiction",
    "collected_at",
    "recorded_at",
    "ip_truncated",
    "user_agent_hash",
)
_TIME_COLUMNS = frozenset({"collected_at", "recorded_at"})


def record_row(r: ConsentRecord) -> dict[str, Any]:
    """A record as its `consent_records` row."""
    return {
        "record_id": r.record_id,
        "source_id": r.source_id,
        "subject": r.subject,
        "purpose": r.purpose,
        "granted": r.granted,
        "signal_source": r.source,
        "policy_version": r.policy_version,
        "jurisdiction": r.jurisdiction,
        "collected_at": r.collected_at,
        "recorded_at": r.recorded_at,
        "ip_truncated": r.ip_truncated,
        "user_agent_hash": r.user_agent_hash,
    }


def _insert(conn: Connection, records: Sequence[ConsentRecord]) -> None:
    rows = [record_row(r) for r in records]
    insert_many(  # through the driver: no per-row statement processing
        conn,
        _records,
        _RECORD_COLUMNS,
        [
            tuple(
                stored_time(conn, row[name]) if name in _TIME_COLUMNS else row[name]
                for name in _RECORD_COLUMNS
            )
            for row in rows
        ],
    )
    _keep_current(conn, rows)


def _read_suppressions(conn: Connection, source_id: str | None) -> list[ConsentRecord]:
    """The latest suppression record of every subject that has one."""
    query = select(_records).where(_records.c.purpose == SUPPRESSION)
    if source_id is not None:
        query = query.where(_records.c.source_id == source_id)
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for row in conn.execute(query):
        record = _to_record(row)
        key = (record.source_id, record.subject)
        known = latest.get(key)
        # the latest by collection time, then recording time, as current_state decides
        if known is None or (record.collected_at, record.recorded_at) >= (
            known.collected_at,
            known.recorded_at,
        ):
            latest[key] = record
    return sorted(latest.values(), key=lambda r: (r.recorded_at, r.subject))


def _read_history(conn: Connection, key: SubjectKey) -> list[ConsentRecord]:
    query = (
        select(_records)
        .where(_records.c.source_id == key[0], _records.c.subject == key[1])
        .order_by(_records.c.recorded_at, _records.c.record_id)
    )
    return [_to_record(row) for row in conn.execute(query)]


def _read_states(conn: Connection, source_id: str, subjects: list[str]) -> dict[str, ConsentState]:
    """The current state of each subject, from `consent_current`: its cost does not grow with
    a subject's history."""
    states: dict[str, ConsentState] = {}
    for row in conn.execute(_CURRENT_STATES, {"source_id": source_id, "subjects": subjects}):
        states.setdefault(row.subject, {})[row.purpose] = PurposeState(
            granted=bool(row.granted),
            source=row.signal_source,
            recorded_at=as_utc(row.recorded_at),
            collected_at=as_utc(row.collected_at),
            record_id=row.record_id,
        )
    return states


_KEPT = ("granted", "signal_source", "collected_at", "recorded_at", "record_id")


@cache
def _keep_current_statement(dialect: str) -> Any:
    """The upsert of `_keep_current`, built once per dialect (building it cost more than
    running it)."""
    statement = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_current)
    new, old = statement.excluded, _current.c
    later = or_(
        new.collected_at > old.collected_at,
        and_(new.collected_at == old.collected_at, new.recorded_at > old.recorded_at),
        and_(
            new.collected_at == old.collected_at,
            new.recorded_at == old.recorded_at,
            new.record_id > old.record_id,
        ),
    )
    return statement.on_conflict_do_update(
        index_elements=["source_id", "subject", "purpose"],
        set_={name: new[name] for name in _KEPT},
        where=later,
    )


def _keep_current(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each record becomes its purpose's current one unless a later one is there already
    (later: by collection time, then recording time, then id, as `current_state` orders)."""
    execute_compiled(conn, _keep_current_statement(conn.dialect.name), rows, _TIME_COLUMNS)
