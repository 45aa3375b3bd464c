"""The core in-process: events/s with 50 segments against none; a backfill over 100k profiles."""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bus import Database, EventEnvelope, encode_event
from profiles import ProfileConsumer, SegmentMaintenance, SegmentStore

SUBJECTS = 1000
BATCH = 100
PERSONAL = ("analytics", "personalization")


def segment_rules(count: int = 50) -> dict[str, dict[str, Any]]:
    """`count` segments of mixed rules: traits, computed traits, windows, consent, references."""
    rules: dict[str, dict[str, Any]] = {}
    for n in range(count):
        match n % 6:
            case 0:
                rule: dict[str, Any] = {"trait": "plan", "op": "eq", "value": f"plan-{n % 3}"}
            case 1:
                rule = {"event": f"Event {n % 7}", "count": {"op": "gte", "value": 2},
                        "within_days": 7}  # fmt: skip
            case 2:
                rule = {"computed": "sessions", "op": "gte", "value": n % 4}
            case 3:
                rule = {"all": [{"consent": "personalization"},
                                {"computed": "platform", "op": "eq", "value": "ios"}]}  # fmt: skip
            case 4:
                rule = {"any": [{"segment": f"s{n - 4}"}, {"event": "Signed Up"}]}
            case _:
                rule = {"not": {"computed": "flows.onboarding.last_step", "op": "eq",
                                "value": "done"}}  # fmt: skip
        rules[f"s{n}"] = rule
    return rules


def _envelopes(events: int) -> list[EventEnvelope]:
    now = datetime.now(UTC)
    out = []
    for n in range(events):
        at = now - timedelta(minutes=(events - n) % 5000)
        identify = n % 10 == 0
        out.append(
            EventEnvelope(
                message_id=f"m{n}",
                source_id="src_bench",
                type="identify" if identify else "track",
                subject=f"p1_user{n % SUBJECTS}",
                anonymous=None,
                received_at=at,
                timestamp=at,
                event=None if identify else f"Event {n % 7}",
                traits={"plan": f"plan-{n % 3}"} if identify else {},
                properties={"flow": "onboarding", "step": f"step-{n % 4}"},
                context={"os": {"name": "iOS"}},
                purposes=PERSONAL,
            )
        )
    return out


async def _consumer_with(database: Database, segments: int) -> ProfileConsumer:
    store = SegmentStore(database)
    for key, rule in segment_rules(segments).items():
        await store.put(key, key, rule)
    return ProfileConsumer(database)


def core_costs(events: int = 20_000) -> dict[str, float]:
    """The core's events/s applying batches of 100 (1,000 subjects), with 0 and 50 segments,
    each in its own database. The two cores take the same batches in turn, so that the
    machine's drift during the run falls on both alike, and which goes first alternates: the
    second of two identical cores measured 5-10% slower than the first. The heap built before
    is frozen, as `consentgate serve` freezes its own once started: otherwise each full
    collection scans every module the bench imported (about a fifth of the cores' time, and
    whichever core it fell on moved the ratio by +-0.08 from run to run)."""
    from benchmarks.compute import _scratch_database

    async def measure() -> dict[str, float]:
        async with _scratch_database() as bare, _scratch_database() as segmented:
            cores = {0: await _consumer_with(bare, 0), 50: await _consumer_with(segmented, 50)}
            messages = [encode_event(envelope) for envelope in _envelopes(events)]
            spent = dict.fromkeys(cores, 0.0)
            gc.collect()
            gc.freeze()
            try:
                for turn, start in enumerate(range(0, len(messages), BATCH)):
                    batch = messages[start : start + BATCH]
                    order = list(cores.items())
                    for segments, consumer in order if turn % 2 == 0 else reversed(order):
                        started = time.perf_counter()
                        await consumer(batch)
                        spent[segments] += time.perf_counter() - started
            finally:
                gc.unfreeze()
        return {
            "core_no_segments_events_per_s": events / spent[0],
            "core_50_segments_events_per_s": events / spent[50],
        }

    return asyncio.run(measure())


def backfill_costs(profiles: int = 100_000) -> dict[str, float]:
    """Seconds to backfill one new segment over `profiles` existing profiles."""
    from benchmarks.compute import _scratch_database

    async def measure() -> float:
        async with _scratch_database() as database:
            now = datetime.now(UTC)
            rows = [
                {
                    "source_id": "src_bench",
                    "subject": f"p1_user{n:06d}",
                    "traits": {"plan": f"plan-{n % 3}"},
                    "event_counts": {"Signed Up": 1},
                    "first_seen": now,
                    "last_seen": now,
                    "updated_at": now,
                    "day_counts": {"Signed Up": {now.date().isoformat(): 1}},
                    "consent": list(PERSONAL),
                    "accumulated": {},
                }
                for n in range(profiles)
            ]
            from sqlalchemy import insert

            from profiles._tables import ProfileRow

            await database.transaction(
                lambda conn: conn.execute(insert(ProfileRow.__table__), rows)  # type: ignore[arg-type]
            )
            consumer = ProfileConsumer(database)
            await SegmentStore(database).put(
                "pro-active",
                "Pro and active",
                {
                    "all": [
                        {"trait": "plan", "op": "eq", "value": "plan-1"},
                        {"event": "Signed Up", "within_days": 7},
                    ]
                },
            )
            maintenance = SegmentMaintenance(database, consumer)
            started = time.perf_counter()
            while await maintenance.backfill_step():
                pass
            return time.perf_counter() - started

    return {"backfill_100k_profiles_s": asyncio.run(measure())}


def define_segments(path: Any, count: int = 50) -> None:
    """The mixed segments, defined in the (migrated) SQLite database at `path`."""
    from gateway.database import open_database

    async def define() -> None:
        database = open_database(f"sqlite:///{path}")
        try:
            store = SegmentStore(database)
            for key, rule in segment_rules(count).items():
                await store.put(key, key, rule)
        finally:
            await database.dispose()

    asyncio.run(define())


def recommend_costs(subjects: int = 20_000, per_subject: int = 5) -> dict[str, float]:
    """Seconds to rebuild a recommendation model from the profiles after 100k interactions
    (20k subjects x 5 of 200 items, popularity skewed): the scan and the model."""
    import random

    from sqlalchemy import insert

    from benchmarks.compute import _scratch_database
    from personalization import build_model
    from profiles import interaction_key, interaction_sets
    from profiles._tables import ProfileRow

    key = interaction_key("Feature Used", "feature")
    chooser = random.Random(7)
    items = [f"feature-{n}" for n in range(200)]
    weights = [1 / (n + 1) for n in range(200)]

    async def measure() -> float:
        async with _scratch_database() as database:
            now = datetime.now(UTC)
            rows = [
                {
                    "source_id": "src_bench",
                    "subject": f"p1_user{n:06d}",
                    "traits": {},
                    "event_counts": {"Feature Used": per_subject},
                    "first_seen": now,
                    "last_seen": now,
                    "updated_at": now,
                    "day_counts": {},
                    "consent": list(PERSONAL),
                    "accumulated": {
                        "accumulated": {
                            "items": {
                                key: dict.fromkeys(
                                    chooser.choices(items, weights, k=per_subject), 1
                                )
                            }
                        }
                    },
                }
                for n in range(subjects)
            ]
            await database.transaction(
                lambda conn: conn.execute(insert(ProfileRow.__table__), rows)  # type: ignore[arg-type]
            )
            started = time.perf_counter()
            sets = await interaction_sets(database, {key})
            models = {name: build_model(found) for name, found in sets.items()}
            assert models
            return time.perf_counter() - started

    return {"recommend_refresh_100k_interactions_s": asyncio.run(measure())}
