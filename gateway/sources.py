"""Sources and their credentials: created with fresh keys, found by a key's hash.

Keys are random 256-bit tokens, so an unsalted SHA-256 is a sound verifier (nothing to
brute-force); only the hash is stored, and the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Connection

from anonymization import (
    DEFAULT_POLICY,
    FieldProtector,
    Keyring,
    Pseudonymizer,
    load_field_policy,
)
from bus import Database, as_utc
from consent import ConsentConfig, Jurisdiction, PurposeResolver, load_consent_config
from gateway._tables import RetiredKeyRow, SourceRow
from gateway.edge import EdgeConfig, load_edge_config
from profiles import load_trait_config, put_source_traits

_sources = cast(Table, SourceRow.__table__)
_retired = cast(Table, RetiredKeyRow.__table__)
WRITE_KEY_PREFIX = "wk_"
SERVER_KEY_PREFIX = "sk_"
_NEGATIVE_TTL_SECONDS = 5.0
_NEGATIVE_CACHE_LIMIT = 10_000
# A found source is re-read after this long, so that `sources update` and `rotate-keys`, run
# from the CLI beside a running gateway, take effect without a restart.
SOURCE_CACHE_SECONDS = 30.0
KEY_COLUMNS = ("write_key_hash", "server_key_hash")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Source:
    source_id: str
    name: str
    jurisdiction: Jurisdiction
    pseudonymize: Pseudonymizer = field(repr=False)
    # every pseudonym key version, the current first: old pseudonyms stay findable
    pseudonymizers: tuple[Pseudonymizer, ...] = field(default=(), repr=False)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    purposes: PurposeResolver = field(default_factory=PurposeResolver)
    protector: FieldProtector | None = field(default=None, repr=False)
    edge: EdgeConfig = field(default_factory=EdgeConfig)

    def __post_init__(self) -> None:
        if self.protector is None:  # built by hand (tests, benchmarks): the default policy
            default = FieldProtector(
                DEFAULT_POLICY, self.source_id, self.pseudonymize.blind_index_key()
            )
            object.__setattr__(self, "protector", default)

    def message_id(self, raw: str) -> str:
        """The client's messageId keyed under the source's oldest pseudonym key, which never
        changes: a retry after a new pseudonym epoch still dedupes."""
        oldest = self.pseudonymizers[-1] if self.pseudonymizers else self.pseudonymize
        return oldest.message_id(raw)

    def pseudonyms(self, user_id: str) -> tuple[str, ...]:
        """The subject pseudonyms of `user_id` under every key version, the current first."""
        return tuple(p("subject", user_id) for p in self.pseudonymizers or (self.pseudonymize,))

    @property
    def fields(self) -> FieldProtector:
        return cast(FieldProtector, self.protector)  # never None: set by __post_init__


@dataclass(frozen=True, slots=True)
class CreatedSource:
    """A new source and its keys, which exist in clear only in this value."""

    source_id: str
    name: str
    jurisdiction: Jurisdiction
    write_key: str = field(repr=False)
    server_key: str = field(repr=False)

    def as_json(self) -> dict[str, str]:
        return {
            "source_id": self.source_id,
            "name": self.name,
            "write_key": self.write_key,
            "server_key": self.server_key,
            "jurisdiction": self.jurisdiction,
        }

    def audit_details(self) -> dict[str, str]:
        """What the audit log says of its creation (never its keys)."""
        return {"source_id": self.source_id, "name": self.name, "jurisdiction": self.jurisdiction}


async def create_source(
    database: Database,
    name: str,
    jurisdiction: Jurisdiction,
    consent_config: dict[str, Any] | None = None,
    field_policy: dict[str, Any] | None = None,
    share_keys_with: str | None = None,
    edge_config: dict[str, Any] | None = None,
    *,
    computed_traits: dict[str, Any] | None = None,
) -> CreatedSource:
    """Create a source with fresh keys; its configurations are validated first.

    `share_keys_with` names a source whose pseudonym keys this one uses too (a workspace):
    the same user then gets the same pseudonym in both, so their events join.
    """
    if not name.strip() or len(name) > 200:
        raise ValueError("source name must be 1 to 200 characters")
    load_consent_config(consent_config)  # raises ConsentConfigError naming the bad path
    load_field_policy(field_policy)  # raises FieldPolicyError naming the bad path
    load_edge_config(edge_config)  # raises EdgeConfigError naming the bad field
    load_trait_config(computed_traits)  # raises TraitConfigError naming the bad path
    created = CreatedSource(
        source_id="src_" + secrets.token_hex(8),
        name=name.strip(),
        jurisdiction=jurisdiction,
        write_key=WRITE_KEY_PREFIX + secrets.token_urlsafe(32),
        server_key=SERVER_KEY_PREFIX + secrets.token_urlsafe(32),
    )
    key_scope = None
    if share_keys_with is not None:
        query = select(_sources.c.source_id, _sources.c.key_scope).where(
            _sources.c.source_id == share_keys_with
        )
        other = await database.read(lambda conn: conn.execute(query).first())
        if other is None:
            raise ValueError(f"--share-keys-with: no source {share_keys_with!r}")
        key_scope = other.key_scope or other.source_id
    statement = insert(_sources).values(
        source_id=created.source_id,
        name=created.name,
        jurisdiction=jurisdiction,
        write_key_hash=hash_key(created.write_key),
        server_key_hash=hash_key(created.server_key),
        created_at=datetime.now(UTC),
        consent_config=consent_config or {},
        field_policy=field_policy or {},
        key_scope=key_scope,
        edge_config=edge_config or {},
    )

    def work(conn: Connection) -> None:
        conn.execute(statement)
        if computed_traits:
            put_source_traits(conn, created.source_id, computed_traits)

    await database.transaction(work)
    return created


async def key_scopes(database: Database) -> dict[str, str]:
    """Each source id -> the id whose pseudonym keys it uses (itself, or its workspace's)."""
    query = select(_sources.c.source_id, _sources.c.key_scope).order_by(_sources.c.created_at)
    rows = await database.read(lambda conn: conn.execute(query).all())
    return {row.source_id: row.key_scope or row.source_id for row in rows}


async def count_sources(database: Database) -> int:
    query = select(func.count()).select_from(_sources)
    return int(await database.read(lambda conn: conn.execute(query).scalar_one()))


class SourceRegistry:
    """Finds sources by write key or server key (current, or retired and still in its
    overlap), caching hits for `SOURCE_CACHE_SECONDS` and misses briefly."""

    def __init__(self, database: Database, keyring: Keyring) -> None:
        self._db = database
        self._keyring = keyring
        # cache key -> (source, monotonic time until which the hit stands)
        self._by_hash: dict[tuple[str, str], tuple[Source, float]] = {}
        self._misses: dict[tuple[str, str], float] = {}
        self._by_id: dict[str, tuple[Source, float]] = {}

    async def by_write_key(self, key: str) -> Source | None:
        return await self._find("write_key_hash", key)

    async def by_server_key(self, key: str) -> Source | None:
        return await self._find("server_key_hash", key)

    async def every(self) -> list[Source]:
        """Every source, oldest first (an auditor's search spans them all)."""
        query = select(_sources).order_by(_sources.c.created_at)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [await self._remember(row) for row in rows]

    async def by_id(self, source_id: str) -> Source | None:
        """The source a subject token names (tokens are verified before this is asked)."""
        cached = self._by_id.get(source_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        query = select(_sources).where(_sources.c.source_id == source_id)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else await self._remember(row)

    async def _find(self, column: str, key: str) -> Source | None:
        digest = hash_key(key)
        cache_key = (column, digest)
        now = time.monotonic()
        cached = self._by_hash.get(cache_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        missed_at = self._misses.get(cache_key)
        if missed_at is not None and now - missed_at < _NEGATIVE_TTL_SECONDS:
            return None
        row, valid_for = await self._db.read(lambda conn: _row_for_key(conn, column, digest))
        if row is None:
            self._by_hash.pop(cache_key, None)
            if len(self._misses) >= _NEGATIVE_CACHE_LIMIT:
                self._misses.clear()
            self._misses[cache_key] = now
            return None
        source = await self._remember(row)
        self._by_hash[cache_key] = (source, now + min(SOURCE_CACHE_SECONDS, valid_for))
        return source

    async def _remember(self, row: Any) -> Source:
        """The source of `row`, built once per `SOURCE_CACHE_SECONDS`."""
        cached = self._by_id.get(row.source_id)
        source = cached[0] if cached is not None and cached[1] > time.monotonic() else None
        if source is None:
            consent = load_consent_config(row.consent_config)
            keys = await self._keyring.source_keys(row.key_scope or row.source_id)
            source = Source(
                source_id=row.source_id,
                name=row.name,
                jurisdiction=row.jurisdiction,
                pseudonymize=keys.current,
                pseudonymizers=keys.versions,
                consent=consent,
                purposes=PurposeResolver(consent),
                protector=FieldProtector(
                    load_field_policy(row.field_policy),
                    row.source_id,
                    keys.current.blind_index_key(),
                ),
                edge=load_edge_config(row.edge_config),
            )
            self._by_id[row.source_id] = (source, time.monotonic() + SOURCE_CACHE_SECONDS)
        return source


def _row_for_key(conn: Connection, column: str, digest: str) -> tuple[Any, float]:
    """The source row whose current key (or retired key, still in its overlap) hashes to
    `digest`, and for how many seconds that holds (None, 0 when none)."""
    row = conn.execute(select(_sources).where(_sources.c[column] == digest)).first()
    if row is not None and hmac.compare_digest(getattr(row, column), digest):
        return row, SOURCE_CACHE_SECONDS
    now = datetime.now(UTC)
    retired = conn.execute(
        select(_retired.c.source_id, _retired.c.key_hash, _retired.c.expires_at).where(
            _retired.c.key_hash == digest, _retired.c.kind == column
        )
    ).first()
    if retired is None or not hmac.compare_digest(retired.key_hash, digest):
        return None, 0.0
    left = (as_utc(retired.expires_at) - now).total_seconds()
    if left <= 0:
        return None, 0.0
    row = conn.execute(select(_sources).where(_sources.c.source_id == retired.source_id)).first()
    return row, left
