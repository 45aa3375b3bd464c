"""Feature flags and remote config: definitions (validated, naming the path at fault), their
versions, and the store. DESIGN's shape:

    {"type": "boolean|string|number|object", "variants": {"on": true, "off": false},
     "default_variant": "off",
     "rules": [{"when": RULE, "variant": "on"}, {"when": RULE, "split": {"on": 20, "off": 80}}],
     "requires_consent": "personalization", "enabled": true}

An `object` flag is remote config. `requires_consent: null` marks a flag that is not
personalized: it is evaluated without the profile, for everyone.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, cast

import msgspec
import structlog
from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from consent import PURPOSES
from personalization._tables import CapReached, FlagRow, save_version
from profiles import RuleError, compile_rule, segment_references, validate_rule

FlagType = Literal["boolean", "string", "number", "object"]
FLAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_FLAGS = 1000
MAX_VARIANTS = 50
DEFINITIONS_SECONDS = 1.0  # how long evaluations reuse the definitions they read
log = structlog.get_logger()
_flags = cast(Table, FlagRow.__table__)


class FlagError(ValueError):
    """An invalid flag definition; the message ends with the path at fault."""


class FlagRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    when: dict[str, Any]
    variant: str | None = None
    split: dict[str, int] | None = None


class FlagDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: FlagType
    variants: dict[str, Any]
    default_variant: str
    rules: list[FlagRule] = []
    requires_consent: str | None = "personalization"
    enabled: bool = True
    description: str = ""


class Flag(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    version: int
    updated_at: datetime
    origin: str  # "api" or "file"
    definition: FlagDefinition


_TYPES: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda value: isinstance(value, bool),
    "string": lambda value: isinstance(value, str),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
}


def parse_definition(raw: Any, known_segments: set[str] | None = None) -> FlagDefinition:
    """A definition from JSON, validated; a FlagError names the path at fault."""
    try:
        flag = msgspec.convert(raw, FlagDefinition)
    except msgspec.ValidationError as error:
        message, found, path = str(error).rpartition(" - at `")
        if not found:  # msgspec names no path for the top level
            raise FlagError(f"{error} at $") from None
        raise FlagError(f"{message} at {path.rstrip('`')}") from None
    check_definition(flag, known_segments)
    return flag


def check_definition(flag: FlagDefinition, known_segments: set[str] | None) -> None:
    if not flag.variants or len(flag.variants) > MAX_VARIANTS:
        raise FlagError(f"1 to {MAX_VARIANTS} variants at $.variants")
    fits = _TYPES[flag.type]
    for name, value in flag.variants.items():
        if not name or len(name) > 100:
            raise FlagError(f"a variant name of 1 to 100 characters at $.variants.{name}")
        if not fits(value):
            raise FlagError(f"a {flag.type} value at $.variants.{name}")
    if flag.default_variant not in flag.variants:
        raise FlagError(f"{flag.default_variant!r} is no variant at $.default_variant")
    if flag.requires_consent is not None and flag.requires_consent not in PURPOSES:
        raise FlagError(f"a purpose ({', '.join(PURPOSES)}) or null at $.requires_consent")
    if len(flag.rules) > 100:
        raise FlagError("at most 100 rules at $.rules")
    for index, rule in enumerate(flag.rules):
        _check_rule(flag, rule, f"$.rules[{index}]", known_segments)


def _check_rule(
    flag: FlagDefinition, rule: FlagRule, path: str, known_segments: set[str] | None
) -> None:
    try:
        validate_rule(rule.when, f"{path}.when")
    except RuleError as error:
        raise FlagError(str(error)) from None
    unknown = segment_references(rule.when) - (known_segments or set())
    if known_segments is not None and unknown:
        raise FlagError(f"unknown segment {sorted(unknown)[0]!r} at {path}.when")
    if (rule.variant is None) == (rule.split is None):
        raise FlagError(f"exactly one of variant and split at {path}")
    if rule.variant is not None and rule.variant not in flag.variants:
        raise FlagError(f"{rule.variant!r} is no variant at {path}.variant")
    for name, weight in (rule.split or {}).items():
        if name not in flag.variants:
            raise FlagError(f"{name!r} is no variant at {path}.split.{name}")
        if not 0 <= weight <= 1_000_000:
            raise FlagError(f"a weight of 0 to 1000000 at {path}.split.{name}")
    if rule.split is not None and not any(rule.split.values()):
        raise FlagError(f"the weights sum to more than 0 at {path}.split")


class CompiledFlag:
    """A flag ready to evaluate: its rules compiled, its splits in declared order."""

    __slots__ = ("flag", "rules")

    def __init__(self, flag: Flag) -> None:
        self.flag = flag
        self.rules = [
            (
                compile_rule(rule.when),
                rule.variant,
                [(name, weight) for name, weight in rule.split.items() if weight]
                if rule.split
                else None,
            )
            for rule in flag.definition.rules
        ]


def _flag(row: Any) -> Flag:
    return Flag(
        key=row.key,
        version=row.version,
        updated_at=as_utc(row.updated_at),
        origin=row.origin,
        definition=msgspec.convert(row.definition, FlagDefinition),
    )


class FlagStore:
    """Definitions in the database, versioned; evaluations read a cached, compiled set."""

    def __init__(self, database: Database, segment_keys: Callable[[], Any]) -> None:
        """`segment_keys()` is awaitable and answers the segments that exist now."""
        self._db = database
        self._segment_keys = segment_keys
        self._compiled: dict[str, CompiledFlag] = {}
        self._changed = True  # never read, or changed through this store since the last read
        self._generation = 0  # changes through this store: a read begun before one is dropped
        self._next_read = float("-inf")  # when the set is old enough to be read again
        self._rereading: asyncio.Task[None] | None = None
        self._reading = asyncio.Lock()

    async def put(self, key: str, raw: Mapping[str, Any], origin: str = "api") -> Flag:
        if not FLAG_KEY.fullmatch(key):
            raise FlagError("a flag key is 1 to 100 of A-Z a-z 0-9 _ . - at $.key")
        definition = parse_definition(dict(raw), set(await self._segment_keys()))
        stored = msgspec.to_builtins(definition)

        def work(conn: Connection) -> Flag:
            values = {"definition": stored, "origin": origin}
            try:
                version, now = save_version(conn, _flags, key, values, MAX_FLAGS, "flags")
            except CapReached as error:
                raise FlagError(str(error)) from None
            return Flag(
                key=key, version=version, updated_at=now, origin=origin, definition=definition
            )

        flag = await self._db.transaction(work)
        self._changed_here()
        return flag

    async def get(self, key: str) -> Flag | None:
        query = select(_flags).where(_flags.c.key == key)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return _flag(row) if row is not None else None

    async def listing(self, limit: int, after: str = "") -> list[Flag]:
        query = select(_flags).where(_flags.c.key > after).order_by(_flags.c.key).limit(limit)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [_flag(row) for row in rows]

    async def delete(self, key: str) -> bool:
        statement = delete(_flags).where(_flags.c.key == key)
        removed = await self._db.transaction(lambda conn: conn.execute(statement).rowcount)
        self._changed_here()
        return bool(removed)

    async def compiled(self) -> dict[str, CompiledFlag]:
        """Every flag, compiled. A change made through this store is read before the next
        evaluation. One made elsewhere (another worker, the CLI) shows within
        DEFINITIONS_SECONDS and a read: the evaluation that finds the set that old starts a
        re-read in the background, and evaluations go on with the set they have until it lands.
        When they waited for it instead, every second a burst of evaluations waited on the
        database's reader thread, and that burst was most of OFREP's p99 at half its peak rate.
        """
        while self._changed:
            await self._read()
        if time.monotonic() >= self._next_read and self._rereading is None:
            # a context of its own: not the request's, whose span has ended when the read runs
            self._rereading = asyncio.get_running_loop().create_task(
                self._reread(), context=contextvars.Context()
            )
        return self._compiled

    def _changed_here(self) -> None:
        self._generation += 1
        self._changed = True

    async def _reread(self) -> None:
        try:
            await self._read()
        except Exception as error:  # the set in hand stays; the next evaluation tries again
            self._next_read = time.monotonic() + DEFINITIONS_SECONDS
            log.warning("flag_definitions_unreadable", error=type(error).__name__)
        finally:
            self._rereading = None

    async def _read(self) -> None:
        """One read serves every evaluation waiting for it (each queueing its own read on the
        reader thread made a burst wait for all of them)."""
        async with self._reading:
            if self._changed or time.monotonic() >= self._next_read:  # else read meanwhile
                await self._read_now()

    async def _read_now(self) -> None:
        generation = self._generation
        started = time.monotonic()
        rows = await self._db.read(lambda conn: conn.execute(select(_flags)).all())
        fresh: dict[str, CompiledFlag] = {}
        for row in rows:
            cached = self._compiled.get(row.key)
            if cached is None or cached.flag.version != row.version:
                cached = CompiledFlag(_flag(row))
            fresh[row.key] = cached
        if generation == self._generation:  # else changed here meanwhile: read again
            self._compiled = fresh
            self._changed = False
            self._next_read = started + DEFINITIONS_SECONDS
