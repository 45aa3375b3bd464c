"""Segments over time: windows that slide with no event, and backfills over existing profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import text

from bus import Database, EventEnvelope, encode_event
from gateway.database import open_database
from gateway.settings import Settings
from gateway.sources import CreatedSource
from profiles import ProfileConsumer, SegmentMaintenance, SegmentStore
from tests.helpers import basic, bearer, wait_for


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


async def _rows(database: Database, sql: str) -> list[tuple[Any, ...]]:
    found = await database.read(lambda conn: conn.execute(text(sql)).all())
    return [tuple(row) for row in found]


def _event(message_id: str, at: datetime) -> EventEnvelope:
    return EventEnvelope(
        message_id=message_id,
        source_id="src",
        type="track",
        subject="p1_quiet",
        anonymous=None,
        received_at=at,
        timestamp=at,
        event="Feature Used",
        purposes=("analytics", "personalization"),
    )


async def test_a_subject_leaves_a_window_segment_when_the_window_slides(
    migrated: Settings,
) -> None:
    """Five days after their last event a user is "active in 7 days"; three days later, with no
    new event, the daily sweep moves them to "inactive" and logs the window as the cause.

    The consumer reads today from the clock: a day of slack on each side keeps the test right
    when it runs across midnight."""
    now = datetime.now(UTC)
    later = (now + timedelta(days=3)).date()
    database = open_database(migrated.database_url)
    try:
        segments = SegmentStore(database)
        active = {"event": "Feature Used", "within_days": 7}
        await segments.put("active", "Active", active)
        await segments.put("inactive", "Inactive", {"not": {"segment": "active"}})
        consumer = ProfileConsumer(database)
        await consumer([encode_event(_event("m1", now - timedelta(days=5)))])
        members = "SELECT segment_key FROM profiles_segment_members WHERE subject='p1_quiet'"
        assert await _rows(database, members) == [("active",)]
        maintenance = SegmentMaintenance(database, consumer)
        assert await maintenance.sweep_windows(now.date()) == 0  # today: nothing slid out
        assert await maintenance.sweep_windows(now.date()) is None  # once a day
        assert await maintenance.sweep_windows(later) == 2
        assert await _rows(database, members) == [("inactive",)]
        log = await _rows(
            database,
            "SELECT joined_keys, left_keys, cause FROM profiles_segment_changes ORDER BY id",
        )
        window = f"window:{later.isoformat()}"
        assert log == [(" active ", "", "event:m1"), (" inactive ", " active ", window)]
    finally:
        await database.dispose()


def test_a_new_segment_is_backfilled_over_existing_profiles_with_progress(
    client: TestClient, source: CreatedSource, admin: dict[str, str], auditor: dict[str, str]
) -> None:
    """Profiles that existed before the segment join it without sending another event; the
    segment shows the backfill's progress."""
    write = basic(source.write_key)
    for user in ("u1", "u2", "u3"):
        client.post("/v1/track", headers=write, json={"userId": user, "event": "Signed Up"})
    server = bearer(source.server_key)

    def profiles_exist() -> bool | None:
        found = [client.get(f"/v1/profiles/{u}", headers=server) for u in ("u1", "u2", "u3")]
        return all(answer.status_code == 200 for answer in found) or None

    wait_for(profiles_exist)
    rule = {"name": "Signed up", "rule": {"event": "Signed Up"}}
    assert client.put("/v1/segments/signed-up", headers=admin, json=rule).is_success

    def finished() -> dict[str, Any] | None:
        segment: dict[str, Any] = client.get("/v1/segments/signed-up", headers=auditor).json()
        return segment if segment["backfill"]["finished"] else None

    segment = wait_for(finished)
    assert segment["backfill"] == {"done": 3, "total": 3, "finished": True}
    assert segment["members"] == 3


async def test_a_segment_deleted_while_the_core_still_evaluates_it_leaves_no_member(
    migrated: Settings,
) -> None:
    """The core reads the definitions again about once a second: an event applied in between
    may still join a segment just deleted. Its membership goes when the core learns of the
    deletion, and a segment created again under that key counts only its own members (and
    its backfill is not refused by the old row)."""
    now = datetime.now(UTC)
    database = open_database(migrated.database_url)
    try:
        segments = SegmentStore(database)
        consumer = ProfileConsumer(database)
        rule = {"event": "Feature Used"}
        await segments.put("used", "Used", rule)
        await consumer([encode_event(_event("m1", now))])  # reads the definitions
        assert await segments.delete("used")
        late = msgspec.structs.replace(_event("m2", now), subject="p1_late")
        await consumer([encode_event(late)])  # within the second: still evaluates "used"
        consumer.segments.expire_definitions()  # as a second later
        again = msgspec.structs.replace(late, message_id="m3")
        await consumer([encode_event(again)])
        members = "SELECT subject FROM profiles_segment_members ORDER BY subject"
        assert await _rows(database, members) == []
        await segments.put("used", "Used", rule)
        maintenance = SegmentMaintenance(database, consumer)
        while await maintenance.backfill_step():
            pass
        assert await _rows(database, members) == [("p1_late",), ("p1_quiet",)]
    finally:
        await database.dispose()
