"""A subject's current consent comes from `consent_current`, kept with every insert: it must
always be what `current_state` computes from the whole history (the evidence), in any order
of collection times, ties included, and after the migration that fills it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from consent import (
    NO_SIGNALS,
    ConsentConfig,
    ConsentRecord,
    ConsentStore,
    current_state,
    decide,
)
from consent._store import record_row
from consent._tables import ConsentRecordRow
from gateway.database import open_database, prepare_sqlite_file
from gateway.migrate import alembic_config, upgrade_to_head

_START = datetime(2026, 1, 1, tzinfo=UTC)
_PURPOSES = ("analytics", "marketing", "personalization")

# (subject, purpose, granted, minutes after the start it was collected): few values, so that
# ties in collection time are common
_CHOICES = st.lists(
    st.tuples(
        st.sampled_from(("s1", "s2")),
        st.sampled_from(_PURPOSES),
        st.booleans(),
        st.integers(min_value=0, max_value=3),
    ),
    min_size=1,
    max_size=12,
)


def _records(
    choices: list[tuple[str, str, bool, int]], source_id: str = "src"
) -> list[ConsentRecord]:
    return [
        ConsentRecord(
            record_id=f"cr_{source_id}_{n:04d}",
            source_id=source_id,
            subject=subject,
            purpose=purpose,
            granted=granted,
            source="api",
            policy_version="v1",
            jurisdiction="gdpr",
            collected_at=_START + timedelta(minutes=minutes),
            recorded_at=_START + timedelta(minutes=minutes % 2),  # recording ties too
            ip_truncated=None,
            user_agent_hash=None,
        )
        for n, (subject, purpose, granted, minutes) in enumerate(choices)
    ]


async def _check_kept_state(url: str, records: list[ConsentRecord]) -> None:
    """Appended one at a time, the records leave each subject's kept state equal to the state
    its whole history gives: in the database, and in the cache of the store that wrote them
    (a write updates a cached state in memory, without reading it back)."""
    source_id = records[0].source_id
    database = open_database(url)
    try:
        store = ConsentStore(database)
        await store.states(source_id, ["s1"])  # s1 cached from the start, s2 not
        config = ConsentConfig()
        for record in records:  # one append per record, in the order generated
            await store.append([record])
            # what the state allows, remembered with it, is what the state now decides
            state = (await store.states(source_id, ["s1"]))["s1"]
            decided = {
                purpose
                for purpose in config.known_purposes()
                if decide((purpose,), NO_SIGNALS, "gdpr", stored=state).action != "drop"
            }
            assert store.allowed(source_id, "s1", state, "gdpr", config) == decided
        from_cache = await store.states(source_id, ["s1", "s2"])
        from_database = await ConsentStore(database, cache_limit=0).states(source_id, ["s1", "s2"])
        for subject in ("s1", "s2"):
            history = sorted(
                (r for r in records if r.subject == subject),
                key=lambda r: (r.recorded_at, r.record_id),
            )
            assert from_database[subject] == current_state(history)
            assert from_cache[subject] == current_state(history)
    finally:
        await database.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=_CHOICES)
def test_the_kept_state_is_the_historys_current_state(
    choices: list[tuple[str, str, bool, int]], tmp_path_factory: object
) -> None:
    folder: Path = tmp_path_factory.mktemp("current")  # type: ignore[attr-defined]
    url = f"sqlite:///{folder}/consent.db"
    upgrade_to_head(url)
    asyncio.run(_check_kept_state(url, _records(choices)))


def test_the_kept_state_is_the_historys_current_state_on_postgresql(
    postgres_database: str,
) -> None:
    """The same on PostgreSQL, whose upsert is its own statement: one database, a source of
    its own for each example."""
    upgrade_to_head(postgres_database)

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(choices=_CHOICES)
    def check(choices: list[tuple[str, str, bool, int]]) -> None:
        records = _records(choices, source_id=f"src-{uuid.uuid4().hex[:12]}")
        asyncio.run(_check_kept_state(postgres_database, records))

    check()


def test_the_migration_fills_it_from_the_existing_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/consent.db"
    prepare_sqlite_file(url)
    command.upgrade(alembic_config(url), "0017")
    records = _records(
        [
            ("s1", "analytics", True, 2),
            ("s1", "analytics", False, 1),
            ("s2", "marketing", True, 0),
            ("s1", "analytics", False, 2),
            ("s2", "marketing", False, 0),
        ]
    )

    async def seed_then_read() -> dict[str, dict[str, object]]:
        database = open_database(url)
        try:
            rows = [record_row(r) for r in records]  # as the store wrote them then
            await database.transaction(lambda conn: conn.execute(insert(ConsentRecordRow), rows))
            await asyncio.to_thread(upgrade_to_head, url)
            states = await ConsentStore(database, cache_limit=0).states("src", ["s1", "s2"])
            return {subject: dict(state) for subject, state in states.items()}
        finally:
            await database.dispose()

    states = asyncio.run(seed_then_read())
    for subject in ("s1", "s2"):
        history = sorted(
            (r for r in records if r.subject == subject), key=lambda r: (r.recorded_at, r.record_id)
        )
        assert states[subject] == current_state(history)
