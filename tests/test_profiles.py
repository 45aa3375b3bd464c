"""The profile core: pure updates and the consumer's dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bus import Erase, EventEnvelope, encode_control, encode_event
from gateway.database import open_database
from gateway.settings import Settings
from profiles import (
    OTHER_EVENTS,
    ApplyOptions,
    ProfileConsumer,
    apply_event,
    erasure_receipts,
    read_profile,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


PERSONAL = ("analytics", "personalization")
TEN = ApplyOptions(max_keys=10)


def _envelope(
    message_id: str, kind: str = "track", at: datetime = T0, **fields: object
) -> EventEnvelope:
    fields.setdefault("purposes", PERSONAL)
    return EventEnvelope(
        message_id=message_id,
        source_id="src",
        type=kind,  # type: ignore[arg-type]
        subject="p1_s",
        anonymous=None,
        received_at=at,
        timestamp=at,
        **fields,  # type: ignore[arg-type]
    )


def test_apply_event_tracks_first_and_last_seen_out_of_order() -> None:
    """first_seen/last_seen hold the extremes whatever the arrival order."""
    state = apply_event(None, _envelope("a", at=T0 + timedelta(hours=2), event="x"), "p1_s")
    state = apply_event(state, _envelope("b", at=T0, event="x"), "p1_s")
    state = apply_event(state, _envelope("c", kind="page", at=T0 + timedelta(hours=1)), "p1_s")
    assert (state.first_seen, state.last_seen) == (T0, T0 + timedelta(hours=2))
    assert state.event_counts == {"x": 2, "page": 1}


async def test_consumer_applies_each_message_id_once(migrated: Settings) -> None:
    """Redelivered messages, in one batch or across batches, change nothing."""
    engine = open_database(migrated.database_url)
    consumer = ProfileConsumer(engine)
    first = [encode_event(_envelope(f"m{n}", event="x")) for n in range(3)]
    await consumer(first + first[:1])
    await consumer(first)
    await consumer([encode_event(_envelope("id1", kind="identify", traits={"plan": "pro"}))])
    profile = await read_profile(engine, "src", "p1_s")
    assert profile is not None
    assert profile.computed.event_counts == {"x": 3, "identify": 1}
    assert profile.traits == {"plan": "pro"}
    assert await consumer.purge_processed(timedelta(hours=24)) == 0
    await engine.dispose()


async def test_erase_runs_in_order_and_late_events_stay_erased(migrated: Settings) -> None:
    """Events before an erase message are applied then erased; an event accepted before the
    erasure but delivered after it is skipped; one accepted later is applied."""
    engine = open_database(migrated.database_url)
    consumer = ProfileConsumer(engine)
    erased_at = T0 + timedelta(hours=1)
    erase = Erase(source_id="src", subject="p1_s", request_id="pr_1", at=erased_at)
    await consumer(
        [
            encode_event(_envelope("before", event="x")),
            encode_control(erase, "pr_1:erase"),
            encode_event(_envelope("late", at=erased_at - timedelta(seconds=1), event="x")),
        ]
    )
    assert await read_profile(engine, "src", "p1_s") is None
    assert [r.profiles_deleted for r in await erasure_receipts(engine, "src", "pr_1")] == [1]
    await consumer([encode_event(_envelope("late-2", at=T0, event="x"))])
    assert await read_profile(engine, "src", "p1_s") is None
    await consumer([encode_event(_envelope("after", at=erased_at + timedelta(days=1), event="y"))])
    profile = await read_profile(engine, "src", "p1_s")
    assert profile is not None
    assert profile.computed.event_counts == {"y": 1}
    await engine.dispose()


def test_event_names_past_the_cap_count_as_other() -> None:
    """A profile keeps at most `max_keys` event names; later new names count under (other)."""
    state = None
    for index in range(15):
        state = apply_event(state, _envelope(f"m{index}", event=f"name-{index}"), "p1_s", TEN)
    assert state is not None
    assert len(state.event_counts) == 11
    assert state.event_counts[OTHER_EVENTS] == 5
    assert state.capped_event_names == 5
    state = apply_event(state, _envelope("again", event="name-0"), "p1_s", TEN)
    assert state.event_counts["name-0"] == 2  # known names still count


def test_traits_past_the_cap_are_left_out_and_known_ones_update() -> None:
    """Past `max_keys` traits a new trait is not kept; existing traits still change."""
    many = {f"t{index}": index for index in range(12)}
    state = apply_event(None, _envelope("a", kind="identify", traits=many), "p1_s", TEN)
    assert len(state.traits) == 10
    assert state.capped_traits == 2
    state = apply_event(state, _envelope("b", kind="identify", traits={"t0": "new"}), "p1_s", TEN)
    assert state.traits["t0"] == "new"


def test_day_counts_keep_the_last_30_days_of_each_event() -> None:
    """Counts per event and day; when the latest day moves on, days before its window go."""
    state = apply_event(None, _envelope("a", at=T0, event="x"), "p1_s")
    state = apply_event(state, _envelope("b", at=T0 + timedelta(hours=1), event="x"), "p1_s")
    state = apply_event(state, _envelope("c", at=T0 + timedelta(days=10), event="y"), "p1_s")
    assert state.day_counts == {"x": {"2026-01-01": 2}, "y": {"2026-01-11": 1}}
    state = apply_event(state, _envelope("d", at=T0 + timedelta(days=31), event="y"), "p1_s")
    assert state.day_counts == {"y": {"2026-01-11": 1, "2026-02-01": 1}}
    late = apply_event(state, _envelope("e", at=T0, event="z"), "p1_s")
    assert "z" not in late.day_counts  # older than the window: counted in totals only
    assert late.event_counts["z"] == 1
