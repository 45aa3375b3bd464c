"""The keyring: per-source pseudonymization keys (versioned) and per-subject data keys.

Every key is random, stored only wrapped by the KEK, and unwrapped into memory on first use.
A new pseudonym epoch adds a source key version: new events get `p<version>_` pseudonyms, and
every older version stays available so that old pseudonyms can still be found (consent
lookups, erasure). A KEK rotation re-wraps every key and rewrites no data.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from anonymization._kek import KekSet
from anonymization._pseudonym import Pseudonymizer
from anonymization._tables import SourceKeyRow, SubjectKeyRow
from bus import Database

_source_keys = cast(Table, SourceKeyRow.__table__)
_subject_keys = cast(Table, SubjectKeyRow.__table__)
KEY_BYTES = 32
_SUBJECT_CACHE = 100_000


def _source_label(source_id: str, version: int) -> str:
    return f"source-key:{source_id}:v{version}"


def _subject_label(source_id: str, subject: str) -> str:
    return f"subject-key:{source_id}:{subject}"


@dataclass(frozen=True, slots=True)
class SourceKeys:
    """A source's pseudonymizers, the current one first."""

    versions: tuple[Pseudonymizer, ...]

    @property
    def current(self) -> Pseudonymizer:
        return self.versions[0]


class Keyring:
    def __init__(self, database: Database, keks: KekSet) -> None:
        self._db = database
        self._keks = keks
        self._sources: dict[str, SourceKeys] = {}
        self._subjects: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def __repr__(self) -> str:
        return f"Keyring(kek={self._keks.current_id!r})"

    async def source_keys(self, source_id: str) -> SourceKeys:
        """The source's keys, creating version 1 the first time."""
        found = self._sources.get(source_id)
        if found is None:
            rows = await self._db.transaction(lambda conn: self._ensure_source(conn, source_id))
            found = SourceKeys(
                tuple(
                    Pseudonymizer(
                        self._keks.unwrap(kek, wrapped, _source_label(source_id, version)),
                        version=version,
                    )
                    for version, kek, wrapped in rows
                )
            )
            self._sources[source_id] = found
        return found

    async def start_epoch(self, source_id: str) -> int:
        """Add a pseudonym key version; returns it. Processes pick it up when they restart."""
        version = await self._db.transaction(lambda conn: self._add_version(conn, source_id))
        self._sources.pop(source_id, None)
        return version

    async def subject_keys(self, source_id: str, subjects: Iterable[str]) -> dict[str, bytes]:
        """The data keys of `subjects`, creating the missing ones (one transaction)."""
        found: dict[str, bytes] = {}
        missing: list[str] = []
        for subject in subjects:
            key = self._subjects.get((source_id, subject))
            if key is None:
                missing.append(subject)
            else:
                found[subject] = key
        if missing:
            rows = await self._db.transaction(
                lambda conn: self._ensure_subjects(conn, source_id, missing)
            )
            for subject, kek, wrapped in rows:
                key = self._keks.unwrap(kek, wrapped, _subject_label(source_id, subject))
                found[subject] = key
                self._remember_subject((source_id, subject), key)
        return found

    async def existing_subject_key(self, source_id: str, subject: str) -> bytes | None:
        """The data key if the subject has one (reading never creates a key)."""
        query = select(_subject_keys.c.kek_id, _subject_keys.c.wrapped).where(
            _subject_keys.c.source_id == source_id, _subject_keys.c.subject == subject
        )
        row = await self._db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return self._keks.unwrap(row.kek_id, row.wrapped, _subject_label(source_id, subject))

    async def shred(self, source_id: str, subject: str) -> bool:
        """Destroy the subject's data key: every ciphertext under it becomes noise."""
        self._subjects.pop((source_id, subject), None)
        statement = delete(_subject_keys).where(
            _subject_keys.c.source_id == source_id, _subject_keys.c.subject == subject
        )
        deleted = await self._db.transaction(lambda conn: conn.execute(statement).rowcount)
        return bool(deleted)

    def _remember_subject(self, key: tuple[str, str], data_key: bytes) -> None:
        self._subjects[key] = data_key
        if len(self._subjects) > _SUBJECT_CACHE:
            self._subjects.popitem(last=False)

    def _ensure_source(self, conn: Connection, source_id: str) -> list[tuple[int, str, bytes]]:
        rows = self._read_source(conn, source_id)
        if not rows:
            # The first requests of a new source race to create version 1 (several processes
            # on PostgreSQL): one wins, the others keep its key.
            kek, wrapped = self._keks.wrap(os.urandom(KEY_BYTES), _source_label(source_id, 1))
            row = {
                "source_id": source_id,
                "version": 1,
                "kek_id": kek,
                "wrapped": wrapped,
                "created_at": datetime.now(UTC),
            }
            conn.execute(_dialect_insert(conn)(_source_keys).on_conflict_do_nothing(), [row])
            rows = self._read_source(conn, source_id)
        return rows

    @staticmethod
    def _read_source(conn: Connection, source_id: str) -> list[tuple[int, str, bytes]]:
        query = (
            select(_source_keys.c.version, _source_keys.c.kek_id, _source_keys.c.wrapped)
            .where(_source_keys.c.source_id == source_id)
            .order_by(_source_keys.c.version.desc())
        )
        return [(row.version, row.kek_id, row.wrapped) for row in conn.execute(query)]

    def _add_version(self, conn: Connection, source_id: str) -> int:
        latest = conn.execute(
            select(func.max(_source_keys.c.version)).where(_source_keys.c.source_id == source_id)
        ).scalar()
        version = int(latest or 0) + 1
        kek, wrapped = self._keks.wrap(os.urandom(KEY_BYTES), _source_label(source_id, version))
        conn.execute(
            insert(_source_keys).values(
                source_id=source_id,
                version=version,
                kek_id=kek,
                wrapped=wrapped,
                created_at=datetime.now(UTC),
            )
        )
        return version

    def _ensure_subjects(
        self, conn: Connection, source_id: str, subjects: list[str]
    ) -> list[tuple[str, str, bytes]]:
        query = select(
            _subject_keys.c.subject, _subject_keys.c.kek_id, _subject_keys.c.wrapped
        ).where(_subject_keys.c.source_id == source_id, _subject_keys.c.subject.in_(subjects))
        rows = [(row.subject, row.kek_id, row.wrapped) for row in conn.execute(query)]
        have = {subject for subject, _, _ in rows}
        now = datetime.now(UTC)
        new_rows = []
        for subject in subjects:
            if subject in have:
                continue
            kek, wrapped = self._keks.wrap(
                os.urandom(KEY_BYTES), _subject_label(source_id, subject)
            )
            new_rows.append(
                {
                    "source_id": source_id,
                    "subject": subject,
                    "kek_id": kek,
                    "wrapped": wrapped,
                    "created_at": now,
                }
            )
        if new_rows:
            # Another process may create the same subject's key meanwhile: keep theirs.
            conn.execute(_dialect_insert(conn)(_subject_keys).on_conflict_do_nothing(), new_rows)
            rows = [(row.subject, row.kek_id, row.wrapped) for row in conn.execute(query)]
        return rows


def _dialect_insert(conn: Connection) -> Any:
    """INSERT with ON CONFLICT, in the connection's dialect."""
    return postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert


def rewrap_all(conn: Connection, old: KekSet, new: KekSet) -> int:
    """Re-wrap every wrapped key from `old`'s KEKs to `new`'s current KEK; returns the count."""
    tables: tuple[tuple[Table, tuple[str, str], Callable[[Any], str]], ...] = (
        (_source_keys, ("source_id", "version"), lambda r: _source_label(r.source_id, r.version)),
        (_subject_keys, ("source_id", "subject"), lambda r: _subject_label(r.source_id, r.subject)),
    )
    count = 0
    for table, key_columns, label_of in tables:
        for row in conn.execute(select(table)).all():
            if row.kek_id == new.current_id:
                continue
            label = label_of(row)
            kek, wrapped = new.wrap(old.unwrap(row.kek_id, row.wrapped, label), label)
            match = [table.c[column] == getattr(row, column) for column in key_columns]
            conn.execute(update(table).where(*match).values(kek_id=kek, wrapped=wrapped))
            count += 1
    return count
