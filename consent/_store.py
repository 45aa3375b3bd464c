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
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from consent._records import SUPPRESSION, ConsentRecord, ConsentState, current_state
from consent._tables import ConsentRecordRow

_records = cast(Table, ConsentRecordRow.__table__)
_CACHE_LIMIT = 200_000

SubjectKey = tuple[str, str]  # (source_id, subject pseudonym)


class ConsentStore:
    def __init__(self, database: Database, *, cache_limit: int = _CACHE_LIMIT) -> None:
        self._db = database
        self._cache: OrderedDict[SubjectKey, ConsentState] = OrderedDict()
        self._generation: dict[SubjectKey, int] = {}
        self._epoch = 0
        self._cache_limit = cache_limit
        self._listeners: list[Callable[[Sequence[ConsentRecord]], Awaitable[None]]] = []

    def on_change(self, listener: Callable[[Sequence[ConsentRecord]], Awaitable[None]]) -> None:
        """Call `listener(records)` after each append has committed."""
        self._listeners.append(listener)

    async def append(self, records: Sequence[ConsentRecord]) -> ConsentState:
        """Insert `records` (one subject) and return that subject's new current state."""
        if not records:
            raise ValueError("no consent records to append")
        key = (records[0].source_id, records[0].subject)
        if any((r.source_id, r.subject) != key for r in records):
            raise ValueError("one append holds the records of one subject")
        self._bump(key)
        history = await self._db.transaction(lambda conn: _insert_then_read(conn, key, records))
        state = current_state(history)
        self._bump(key)
        self._put(key, state)
        for listener in self._listeners:
            await listener(records)
        return state

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


def _insert_then_read(
    conn: Connection, key: SubjectKey, records: Sequence[ConsentRecord]
) -> list[ConsentRecord]:
    conn.execute(
        insert(_records),
        [
            {
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
            for r in records
        ],
    )
    return _read_history(conn, key)


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
    query = select(_records).where(
        _records.c.source_id == source_id, _records.c.subject.in_(subjects)
    )
    by_subject: dict[str, list[ConsentRecord]] = {}
    for row in conn.execute(query):
        record = _to_record(row)
        by_subject.setdefault(record.subject, []).append(record)
    return {subject: current_state(records) for subject, records in by_subject.items()}
