"""Identity stitching: anonymous and aliased profiles merge into the identified one, with the
same result whatever order (and however often) the events arrive."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Connection

from bus import Database, EventEnvelope, encode_event
from gateway.database import open_database
from gateway.settings import Settings
from profiles import (
    Profile,
    ProfileConsumer,
    SegmentMaintenance,
    SegmentStore,
    put_source_traits,
    read_profile,
)
from profiles._profile_rows import ProfileRows, state_of
from profiles._tables import ProfileRow

USER, OLD_USER = "p1_user", "p1_olduser"


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


ANONYMOUS = ("p1_anon_a", "p1_anon_b")
PERSONAL = ("analytics", "personalization")
NOW = datetime.now(UTC).replace(microsecond=0)
TRAITS = {
    "computed_traits": [
        {"name": "spent", "kind": "sum", "event": "Order Completed", "property": "amount"},
        {"name": "top", "kind": "most_frequent", "event": "Feature Used", "property": "feature"},
        {"name": "seen", "kind": "unique", "event": "Feature Used", "property": "feature"},
        {"name": "first_plan", "kind": "first", "event": "Plan Viewed", "property": "plan"},
        {"name": "last_plan", "kind": "last", "event": "Plan Viewed", "property": "plan"},
        {"name": "cheapest", "kind": "min", "event": "Order Completed", "property": "amount"},
    ]
}
SEGMENTS: dict[str, dict[str, Any]] = {
    "returning": {"computed": "sessions", "op": "gte", "value": 2},
    "feature_fans": {"event": "Feature Used", "count": {"op": "gte", "value": 2}, "within_days": 7},
    "pro": {"trait": "plan", "op": "eq", "value": "pro"},
    "pro_fans": {"all": [{"segment": "pro"}, {"segment": "feature_fans"}]},
    "not_pro": {"not": {"segment": "pro"}},
    "mobile": {"computed": "platform", "op": "in", "value": ["ios", "android"]},
    "stopped": {"computed": "flows.onboarding.last_step", "op": "neq", "value": "step-3"},
    "big": {"computed": "custom.spent", "op": "gte", "value": 300},
}

_who = st.sampled_from(["user", "old", *ANONYMOUS, "user+a", "user+b"])
_track = st.tuples(
    st.sampled_from(["Feature Used", "Order Completed", "Plan Viewed", "Onboarding Step"]),
    st.sampled_from(["a", "b", "c"]),
    st.integers(min_value=1, max_value=500),
)
_step = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["track", "track", "page", "identify", "identify_anon", "alias"]),
        "who": _who,
        "minutes": st.integers(min_value=0, max_value=5 * 24 * 60),
        "track": _track,
        "plan": st.sampled_from(["free", "pro", "team"]),
        "os": st.sampled_from(["iOS", "Android", "Mac OS X", None]),
    }
)


def _envelope(index: int, step: dict[str, Any], source_id: str) -> EventEnvelope:
    who = step["who"]
    subject: str | None = {"user": USER, "old": OLD_USER}.get(who)
    anonymous: str | None = None
    if who in ANONYMOUS:
        anonymous = who
    elif who.startswith("user+"):
        subject, anonymous = USER, ANONYMOUS[0 if who.endswith("a") else 1]
    kind, event, properties, traits, previous = step["kind"], None, {}, {}, None
    if kind == "identify_anon":  # an anonymous id identified as the user
        kind, subject, anonymous = "identify", USER, ANONYMOUS[step["minutes"] % 2]
    if kind == "alias":
        subject, anonymous, previous = USER, None, OLD_USER
    if kind == "identify":
        subject = subject or USER
        traits = {"plan": step["plan"]}
    if kind == "track":
        event, feature, amount = step["track"]
        properties = {"feature": feature, "amount": amount, "plan": step["plan"]}
        if event == "Onboarding Step":
            properties = {"flow": "onboarding", "step": f"step-{amount % 4}"}
    at = NOW - timedelta(days=5) + timedelta(minutes=step["minutes"])  # a day of slack at midnight
    return EventEnvelope(
        message_id=f"m{index}",
        source_id=source_id,
        type=kind,
        subject=subject,
        anonymous=anonymous,
        previous=previous,
        received_at=at,
        timestamp=at,
        event=event,
        properties=properties,
        traits=traits,
        context={"os": {"name": step["os"]}} if step["os"] else {},
        purposes=PERSONAL,
    )


async def _build(
    database: Database, source_id: str, batches: list[list[EventEnvelope]]
) -> tuple[Profile | None, list[Profile | None]]:
    await database.transaction(lambda conn: put_source_traits(conn, source_id, TRAITS))
    consumer = ProfileConsumer(database)
    for batch in batches:
        await consumer([encode_event(envelope) for envelope in batch])
    # the incremental evaluation left every membership as a full evaluation decides
    assert await SegmentMaintenance(database, consumer).reevaluate(source_id) == 0
    fast, processed = await database.read(lambda conn: _loaded_both_ways(conn, source_id))
    assert fast == processed
    others = [await read_profile(database, source_id, p) for p in (*ANONYMOUS, OLD_USER)]
    return await read_profile(database, source_id, USER), others


def _loaded_both_ways(conn: Connection, source_id: str) -> tuple[Any, Any]:
    """The source's states as the core loads them (straight from the driver on SQLite) and
    as SQLAlchemy's column types give them: the oracle of the fast read."""
    table = ProfileRow.__table__
    rows = conn.execute(select(table).where(table.c.source_id == source_id)).all()
    subjects = {row.subject for row in rows}
    postgres = conn.dialect.name == "postgresql"
    fast = ProfileRows(postgres=postgres).load(conn, source_id, subjects)
    return fast, {row.subject: state_of(row) for row in rows}


def _comparable(profile: Profile | None) -> Any:
    return msgspec.to_builtins(profile) if profile is not None else None


_counter = iter(range(10**9))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(_step, min_size=1, max_size=25), data=st.data())
def test_merges_give_the_same_profile_in_any_order_with_duplicates(
    migrated: Settings, steps: list[dict[str, Any]], data: st.DataObject
) -> None:
    """The same events, in published order one by one, or shuffled, duplicated and batched at
    random, build the same merged profile (counts, times, traits, computed traits, segments)."""
    run = next(_counter)
    first, second = f"src_a{run}", f"src_b{run}"
    in_order = [[_envelope(i, step, first)] for i, step in enumerate(steps)]
    shuffled = data.draw(st.permutations([_envelope(i, s, second) for i, s in enumerate(steps)]))
    repeats = data.draw(st.lists(st.sampled_from(shuffled), max_size=5))
    delivered = shuffled + repeats
    cuts = sorted(data.draw(st.sets(st.integers(0, len(delivered)), max_size=4)))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]

    async def body() -> tuple[Any, Any, Any, Any]:
        database = open_database(migrated.database_url)
        try:
            store = SegmentStore(database)
            for key, rule in SEGMENTS.items():
                if await store.get(key) is None:
                    await store.put(key, key, rule)
            one, one_others = await _build(database, first, in_order)
            two, two_others = await _build(database, second, [b for b in batches if b])
            return one, two, one_others, two_others
        finally:
            await database.dispose()

    one, two, one_others, two_others = asyncio.run(body())
    assert _comparable(one) == _comparable(two)
    assert [_comparable(p) for p in one_others] == [_comparable(p) for p in two_others]
