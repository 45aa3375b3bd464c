"""Onboarding flows and their experiments (DESIGN's shape):

    {"baseline": {"steps": ["welcome", "profile", "invite"], "flags": {"tour": false}},
     "variants": [{"name": "guided", "when": RULE, "weight": 50, "steps": [...], "flags": {...}}],
     "requires_consent": "personalization", "goal": "Onboarding Completed"}

A subject that a variant's `when` matches joins it with the variant's `weight` percent, bucketed
as flag splits are (MurmurHash3 of the flow key + pseudonym); the rest of the matching subjects
and everyone else get the baseline. The first assignment of a subject is its exposure: kept,
pseudonymous, and served again (sticky) while the variant exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, cast

import msgspec
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from consent import PURPOSES
from personalization._bucket import split_variant
from personalization._flags import FlagError
from personalization._tables import CapReached, ExposureRow, FlowRow, save_version
from profiles import (
    Predicate,
    ProfileView,
    RuleError,
    compile_rule,
    segment_references,
    validate_rule,
)

FLOW_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_FLOWS = 200
BASELINE = "baseline"
_flows = cast(Table, FlowRow.__table__)
_exposures = cast(Table, ExposureRow.__table__)
Reason = Literal["targeted", "split", "no_match"]


class FlowBaseline(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    steps: list[str]
    flags: dict[str, Any] = {}


class FlowVariant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    steps: list[str]
    when: dict[str, Any] | None = None
    weight: int = 100
    flags: dict[str, Any] = {}


class Recommend(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    event: str
    item_property: str
    count: int = 3


class FlowDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    baseline: FlowBaseline
    variants: list[FlowVariant] = []
    requires_consent: str | None = "personalization"
    goal: str | None = None
    recommend: Recommend | None = None


class Flow(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    version: int
    updated_at: datetime
    definition: FlowDefinition


def parse_flow(raw: Any, known_segments: set[str] | None = None) -> FlowDefinition:
    """A flow from JSON, validated; a FlagError names the path at fault."""
    try:
        flow = msgspec.convert(raw, FlowDefinition)
    except msgspec.ValidationError as error:
        message, found, path = str(error).rpartition(" - at `")
        raise FlagError(f"{message} at {path.rstrip('`')}" if found else f"{error} at $") from None
    _check_steps(flow.baseline.steps, "$.baseline.steps")
    if flow.requires_consent is not None and flow.requires_consent not in PURPOSES:
        raise FlagError(f"a purpose ({', '.join(PURPOSES)}) or null at $.requires_consent")
    names: set[str] = set()
    for index, variant in enumerate(flow.variants):
        path = f"$.variants[{index}]"
        if not variant.name or len(variant.name) > 100 or variant.name == BASELINE:
            raise FlagError(f"a name of 1 to 100 characters, not 'baseline', at {path}.name")
        if variant.name in names:
            raise FlagError(f"{variant.name!r} is named twice at {path}.name")
        names.add(variant.name)
        if not 0 <= variant.weight <= 100:
            raise FlagError(f"a weight of 0 to 100 (percent) at {path}.weight")
        _check_steps(variant.steps, f"{path}.steps")
        if variant.when is not None:
            try:
                validate_rule(variant.when, f"{path}.when")
            except RuleError as error:
                raise FlagError(str(error)) from None
            unknown = segment_references(variant.when) - (known_segments or set())
            if known_segments is not None and unknown:
                raise FlagError(f"unknown segment {sorted(unknown)[0]!r} at {path}.when")
    if sum(variant.weight for variant in flow.variants) > 100:
        raise FlagError("the variants' weights sum to at most 100 at $.variants")
    return flow


def _check_steps(steps: list[str], path: str) -> None:
    if not steps or len(steps) > 50 or any(not step or len(step) > 100 for step in steps):
        raise FlagError(f"1 to 50 steps of 1 to 100 characters at {path}")


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    variant: str
    reason: Reason
    steps: list[str]
    flags: dict[str, Any]


class CompiledFlow:
    __slots__ = ("flow", "rules")

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.rules: list[Predicate | None] = [
            compile_rule(variant.when) if variant.when is not None else None
            for variant in flow.definition.variants
        ]

    def baseline(self, reason: str) -> Assignment:
        base = self.flow.definition.baseline
        return Assignment(
            variant=BASELINE, reason=cast(Reason, reason), steps=base.steps, flags=base.flags
        )

    def variant(self, name: str, reason: Reason) -> Assignment | None:
        if name == BASELINE:
            return self.baseline(reason)
        definition = self.flow.definition
        for variant in definition.variants:
            if variant.name == name:
                flags = {**definition.baseline.flags, **variant.flags}
                return Assignment(variant=name, reason=reason, steps=variant.steps, flags=flags)
        return None

    def assign(self, view: ProfileView, targeting_key: str) -> Assignment:
        """The variant for a subject: the matching variants by weight, the rest baseline."""
        matching = [
            variant
            for variant, holds in zip(self.flow.definition.variants, self.rules, strict=True)
            if holds is None or holds(view)
        ]
        if not matching:
            return self.baseline("no_match")
        weights = [(variant.name, variant.weight) for variant in matching if variant.weight]
        rest = 100 - sum(weight for _, weight in weights)
        if rest > 0:
            weights.append((BASELINE, rest))
        chosen = split_variant(self.flow.key, targeting_key, weights)
        reason: Reason = "targeted" if len(weights) == 1 else "split"
        assignment = self.variant(chosen, reason)
        return assignment if assignment is not None else self.baseline("no_match")


def _flow(row: Any) -> Flow:
    return Flow(
        key=row.key,
        version=row.version,
        updated_at=as_utc(row.updated_at),
        definition=msgspec.convert(row.definition, FlowDefinition),
    )


class FlowStore:
    """Flows, versioned, and their exposures (sticky assignments)."""

    def __init__(self, database: Database, segment_keys: Any) -> None:
        self._db = database
        self._segment_keys = segment_keys
        self._compiled: dict[tuple[str, int], CompiledFlow] = {}

    async def put(self, key: str, raw: Mapping[str, Any]) -> Flow:
        if not FLOW_KEY.fullmatch(key):
            raise FlagError("a flow key is 1 to 100 of A-Z a-z 0-9 _ . - at $.key")
        definition = parse_flow(dict(raw), set(await self._segment_keys()))
        stored = msgspec.to_builtins(definition)

        def work(conn: Connection) -> Flow:
            try:
                version, now = save_version(
                    conn, _flows, key, {"definition": stored}, MAX_FLOWS, "flows"
                )
            except CapReached as error:
                raise FlagError(str(error)) from None
            return Flow(key=key, version=version, updated_at=now, definition=definition)

        return await self._db.transaction(work)

    async def get(self, key: str) -> Flow | None:
        query = select(_flows).where(_flows.c.key == key)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return _flow(row) if row is not None else None

    async def compiled(self, key: str) -> CompiledFlow | None:
        flow = await self.get(key)
        if flow is None:
            return None
        cached = self._compiled.get((key, flow.version))
        if cached is None:
            cached = self._compiled[(key, flow.version)] = CompiledFlow(flow)
        return cached

    async def recommend_kinds(self) -> frozenset[tuple[str, str]]:
        """The (event, item property) pairs the flows recommend from."""
        rows = await self._db.read(lambda conn: conn.execute(select(_flows.c.definition)).all())
        kinds = set()
        for row in rows:
            recommend = (row.definition or {}).get("recommend")
            if recommend:
                kinds.add((recommend["event"], recommend["item_property"]))
        return frozenset(kinds)

    async def delete(self, key: str) -> bool:
        def work(conn: Connection) -> bool:
            conn.execute(delete(_exposures).where(_exposures.c.flow_key == key))
            return bool(conn.execute(delete(_flows).where(_flows.c.key == key)).rowcount)

        return await self._db.transaction(work)

    async def exposure(self, source_id: str, subject: str, flow_key: str) -> tuple[str, str] | None:
        """(variant, reason) of the subject's earlier exposure to the flow, if any."""
        query = select(_exposures.c.variant, _exposures.c.reason).where(
            _exposures.c.source_id == source_id,
            _exposures.c.subject == subject,
            _exposures.c.flow_key == flow_key,
        )
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return (row.variant, row.reason) if row is not None else None

    async def expose(
        self, source_id: str, subject: str, flow_key: str, assignment: Assignment
    ) -> None:
        """Record the first exposure (a concurrent first one wins; this one is then dropped)."""
        values = {
            "source_id": source_id,
            "subject": subject,
            "flow_key": flow_key,
            "variant": assignment.variant,
            "reason": assignment.reason,
            "exposed_at": datetime.now(UTC),
        }

        def work(conn: Connection) -> None:
            exists = conn.execute(
                select(_exposures.c.subject).where(
                    _exposures.c.source_id == source_id,
                    _exposures.c.subject == subject,
                    _exposures.c.flow_key == flow_key,
                )
            ).first()
            if exists is None:
                conn.execute(insert(_exposures).values(values))

        await self._db.transaction(work)

    async def exposures(self, flow_key: str) -> list[Any]:
        """Every exposure to the flow: (source_id, subject, variant, exposed_at)."""
        query = select(
            _exposures.c.source_id,
            _exposures.c.subject,
            _exposures.c.variant,
            _exposures.c.exposed_at,
        ).where(_exposures.c.flow_key == flow_key)
        return list(await self._db.read(lambda conn: conn.execute(query).all()))

    async def erase(self, source_id: str, subjects: list[str]) -> int:
        """Delete the subjects' exposures (an erasure, an opt-out of personalization)."""
        statement = delete(_exposures).where(
            _exposures.c.source_id == source_id, _exposures.c.subject.in_(subjects)
        )
        return int(await self._db.transaction(lambda conn: conn.execute(statement).rowcount or 0))
