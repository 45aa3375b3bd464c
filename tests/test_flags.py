"""Flags: definitions refused with the path at fault, deterministic splits (flagd's fractional,
uniform and stable), and evaluation with its fallbacks, as pure functions."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest

from gateway.settings import Settings
from personalization import (
    CompiledFlag,
    Flag,
    FlagError,
    Subject,
    evaluate_flag,
    parse_definition,
    split_hash,
    split_variant,
)
from profiles import ProfileView


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


TODAY = date(2026, 11, 29)


def test_murmur3_reference_vectors() -> None:
    """MurmurHash3 x86_32, seed 0, as published (and as flagd's fractional uses it)."""
    assert split_hash("", "") == 0
    assert split_hash("hel", "lo") == 0x248BFA47
    assert split_hash("The quick brown fox ", "jumps over the lazy dog") == 0x2E4FF723


def test_split_follows_flagds_bucket_arithmetic() -> None:
    """bucket = hash * total >> 32, the variant whose cumulative weight first exceeds it."""
    weights = [("a", 1), ("b", 2), ("c", 1)]
    for key in ("p1_x", "p1_y", "p1_z", "p1_0"):
        bucket = (split_hash("flag", key) * 4) >> 32
        expected = "a" if bucket < 1 else "b" if bucket < 3 else "c"
        assert split_variant("flag", key, weights) == expected


@pytest.mark.parametrize(
    ("weights", "critical"),
    [
        ([("on", 20), ("off", 80)], 10.83),  # chi-square, 1 degree of freedom, p = 0.001
        ([("a", 25), ("b", 25), ("c", 25), ("d", 25)], 16.27),  # 3 degrees of freedom
    ],
)
def test_splits_are_uniform_over_100k_pseudonyms(
    weights: list[tuple[str, int]], critical: float
) -> None:
    """Observed counts over 100,000 pseudonyms match the weights (chi-square, p = 0.001)."""
    total = sum(weight for _, weight in weights)
    counts = dict.fromkeys((name for name, _ in weights), 0)
    subjects = 100_000
    for index in range(subjects):
        counts[split_variant("onboarding-tour", f"p1_{index:07d}q", weights)] += 1
    statistic = sum(
        (counts[name] - subjects * weight / total) ** 2 / (subjects * weight / total)
        for name, weight in weights
    )
    assert statistic < critical, counts


DEFINITION: dict[str, Any] = {
    "type": "boolean",
    "variants": {"on": True, "off": False},
    "default_variant": "off",
    "rules": [
        {"when": {"segment": "beta"}, "variant": "on"},
        {"when": {"trait": "plan", "op": "eq", "value": "pro"}, "split": {"on": 50, "off": 50}},
    ],
}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"type": "colour"}, "$.type"),
        ({"variants": {"on": "yes", "off": False}}, "$.variants.on"),
        ({"default_variant": "maybe"}, "$.default_variant"),
        (
            {"rules": [{"when": {"trait": "x", "op": "like"}, "variant": "on"}]},
            "$.rules[0].when.op",
        ),
        ({"rules": [{"when": {"segment": "beta"}}]}, "$.rules[0]"),
        ({"rules": [{"when": {"segment": "beta"}, "split": {"on": 0}}]}, "$.rules[0].split"),
        ({"rules": [{"when": {"segment": "beta"}, "split": {"x": 1}}]}, "$.rules[0].split.x"),
        ({"rules": [{"when": {"segment": "ghost"}, "variant": "on"}]}, "$.rules[0].when"),
        ({"requires_consent": "everything"}, "$.requires_consent"),
        ({"colour": "red"}, "$"),
    ],
)
def test_invalid_definitions_name_the_path(change: dict[str, Any], where: str) -> None:
    with pytest.raises(FlagError) as refused:
        parse_definition({**DEFINITION, **change}, known_segments={"beta"})
    assert str(refused.value).endswith(f"at {where}"), str(refused.value)


def _compiled(raw: dict[str, Any]) -> CompiledFlag:
    definition = parse_definition(raw, known_segments={"beta"})
    return CompiledFlag(
        Flag(
            key="tour", version=3, updated_at=datetime.now(UTC), origin="api", definition=definition
        )
    )


def _subject(view: ProfileView | None = None, **fields: Any) -> Subject:
    values: dict[str, Any] = {
        "targeting_key": "p1_someone",
        "allowed": frozenset({"analytics", "personalization"}),
        "suppressed": False,
        "view": view,
        "missing": None if view is not None else "unknown_subject",
        "today": TODAY,
    }
    return Subject(**{**values, **fields})


def _view(**fields: Any) -> ProfileView:
    return ProfileView(today=TODAY, **fields)


def test_rules_match_in_order_and_splits_bucket_the_subject() -> None:
    flag = _compiled(DEFINITION)
    beta = evaluate_flag(flag, _subject(_view(segments=frozenset({"beta"}))))
    assert (beta.variant, beta.value, beta.reason, beta.metadata) == (
        "on",
        True,
        "TARGETING_MATCH",
        {"version": 3, "rule": 0},
    )
    pro = evaluate_flag(flag, _subject(_view(traits={"plan": "pro"})))
    assert pro.reason == "SPLIT"
    assert pro.variant == split_variant("tour", "p1_someone", [("on", 50), ("off", 50)])
    other = evaluate_flag(flag, _subject(_view(traits={"plan": "free"})))
    assert (other.variant, other.reason) == ("off", "DEFAULT")


@pytest.mark.parametrize(
    ("subject", "fallback"),
    [
        (_subject(_view(segments=frozenset({"beta"})), allowed=frozenset()), "consent_missing"),
        (_subject(_view(segments=frozenset({"beta"})), suppressed=True), "suppressed"),
        (_subject(None), "unknown_subject"),
        (_subject(None, missing="core_unavailable"), "core_unavailable"),
    ],
)
def test_the_baseline_is_served_with_its_reason(subject: Subject, fallback: str) -> None:
    resolution = evaluate_flag(_compiled(DEFINITION), subject)
    assert (resolution.variant, resolution.value, resolution.reason) == ("off", False, "DEFAULT")
    assert resolution.metadata["fallback"] == fallback


def test_unpersonalized_and_disabled_flags() -> None:
    """`requires_consent: null` evaluates without the profile, for everyone (consent or not);
    a disabled flag serves its default with reason DISABLED; no rules is STATIC."""
    everyone = _compiled({**DEFINITION, "requires_consent": None})
    nobody_known = evaluate_flag(everyone, _subject(None, allowed=frozenset()))
    assert (nobody_known.variant, nobody_known.reason) == ("off", "DEFAULT")
    assert "fallback" not in nobody_known.metadata
    assert evaluate_flag(_compiled({**DEFINITION, "enabled": False}), _subject()).reason == (
        "DISABLED"
    )
    static = evaluate_flag(_compiled({**DEFINITION, "rules": []}), _subject(_view()))
    assert (static.variant, static.reason) == ("off", "STATIC")


async def test_a_new_flag_past_the_cap_is_refused(
    migrated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing a flag bumps its version; a new one past the cap is refused naming $.key."""
    import personalization._flags as flags_module
    from gateway.database import open_database
    from personalization import FlagStore

    monkeypatch.setattr(flags_module, "MAX_FLAGS", 1)
    database = open_database(migrated.database_url)

    async def no_segments() -> list[str]:
        return ["beta"]

    try:
        store = FlagStore(database, no_segments)
        assert (await store.put("one", DEFINITION)).version == 1
        assert (await store.put("one", DEFINITION)).version == 2
        with pytest.raises(FlagError, match=r"at most 1 flags at \$\.key"):
            await store.put("two", DEFINITION)
    finally:
        await database.dispose()


class _SlowReads:
    """A database whose reads, once read, wait until `release` is set to answer (the writes
    go straight through)."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self.release = asyncio.Event()
        self.release.set()
        self.reads = 0

    async def read(self, work: Any) -> Any:
        self.reads += 1
        read = await self._database.read(work)
        await self.release.wait()
        return read

    async def transaction(self, work: Any) -> Any:
        return await self._database.transaction(work)


async def test_evaluations_never_wait_for_the_periodic_reread_and_see_changes_made_elsewhere(
    migrated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change made through another store (another worker, the CLI) shows once the set is
    DEFINITIONS_SECONDS old and a background re-read lands; meanwhile evaluations answer at
    once with the set they have. A change made through this store shows at the very next
    evaluation, even when a re-read begun before it lands after it."""
    import personalization._flags as flags_module
    from gateway.database import open_database
    from personalization import FlagStore

    monkeypatch.setattr(flags_module, "DEFINITIONS_SECONDS", 0.3)
    database = open_database(migrated.database_url)

    async def segments() -> list[str]:
        return ["beta"]

    def variant_of(compiled: dict[str, CompiledFlag], key: str) -> str:
        return compiled[key].flag.definition.default_variant

    try:
        slow = _SlowReads(database)
        here, elsewhere = FlagStore(slow, segments), FlagStore(database, segments)  # type: ignore[arg-type]
        await here.put("f", DEFINITION)
        assert variant_of(await here.compiled(), "f") == "off"

        await elsewhere.put("f", {**DEFINITION, "default_variant": "on"})
        await asyncio.sleep(0.35)
        slow.release.clear()

        async def twenty() -> list[str]:
            return [variant_of(await here.compiled(), "f") for _ in range(20)]

        # the set is old: the first starts a re-read, and none waits for it
        reads = slow.reads
        assert await asyncio.wait_for(twenty(), 1.0) == ["off"] * 20
        await asyncio.sleep(0.05)
        assert slow.reads == reads + 1  # one re-read, held
        slow.release.set()
        await asyncio.sleep(0.05)
        assert variant_of(await here.compiled(), "f") == "on"

        await elsewhere.put("f", DEFINITION)
        await asyncio.sleep(0.35)
        slow.release.clear()
        await here.compiled()  # starts a re-read
        await asyncio.sleep(0.05)  # which has read "off" and is held
        await here.put("f", {**DEFINITION, "default_variant": "on"})
        slow.release.set()
        assert variant_of(await here.compiled(), "f") == "on"  # not the held read's "off"
    finally:
        await database.dispose()
