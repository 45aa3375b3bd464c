"""Migrations create every table, on SQLite and PostgreSQL, with no drift from the models."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.database import open_database
from gateway.migrate import upgrade_to_head
from migrations.metadata import TARGET_METADATA

EXPECTED_TABLES = {
    "alembic_version",
    "gateway_sources",
    "bus_outbox",
    "bus_dead_letters",
    "profiles",
    "profiles_processed_messages",
    "consent_records",
    "consent_current",
    "gateway_subject_tokens",
    "anonymization_source_keys",
    "anonymization_subject_keys",
    "observability_decisions",
    "gateway_admin_tokens",
    "observability_audit_log",
    "observability_audit_checkpoints",
    "privacy_requests",
    "profiles_erasures",
    "gateway_retired_keys",
    "profiles_segments",
    "profiles_segment_members",
    "profiles_identity_links",
    "profiles_segment_changes",
    "profiles_source_traits",
    "profiles_marks",
    "personalization_flags",
    "personalization_flows",
    "personalization_exposures",
}


async def _inspect(database_url: str) -> tuple[set[str], list[Any]]:
    database = open_database(database_url)

    def read(conn: Any) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return set(inspect(conn).get_table_names()), compare_metadata(context, TARGET_METADATA)  # type: ignore[arg-type]  # alembic takes a list

    try:
        return await database.read(read)
    finally:
        await database.dispose()


def _assert_head_matches_models(database_url: str) -> None:
    upgrade_to_head(database_url)
    upgrade_to_head(database_url)  # idempotent
    tables, drift = asyncio.run(_inspect(database_url))
    assert tables == EXPECTED_TABLES
    assert drift == [], f"models and migrations differ: {drift}"


def test_sqlite_upgrade_head_has_no_drift(tmp_path: Any) -> None:
    """On SQLite, upgrade head creates every table and autogenerate finds nothing to add."""
    _assert_head_matches_models(f"sqlite:///{tmp_path}/m.db")


@pytest.mark.postgres
def test_postgres_upgrade_head_has_no_drift(postgres_database: str) -> None:
    """On PostgreSQL, upgrade head creates every table and autogenerate finds nothing to add."""
    _assert_head_matches_models(postgres_database)


_OLD_CHANGES = [
    ("src", "p1_a", "active", True, "event:m1"),
    ("src", "p1_a", "pro", True, "event:m1"),
    ("src", "p1_b", "active", False, "window:2026-11-30"),
]


def _compacts_the_change_log(database_url: str) -> None:
    """0019 keeps each earlier change (one key a row, its id kept); its downgrade splits the
    rows of several keys again."""
    from sqlalchemy import text

    from gateway.database import prepare_sqlite_file
    from gateway.migrate import alembic_config
    from tests.helpers import transact

    at = datetime(2026, 11, 30, tzinfo=UTC)

    def run(sql: str, *rows: dict[str, Any]) -> list[tuple[Any, ...]]:
        def work(conn: Any) -> list[tuple[Any, ...]]:
            if rows:
                conn.execute(text(sql), list(rows))
                return []
            return [tuple(row) for row in conn.execute(text(sql))]

        return transact(database_url, work)

    prepare_sqlite_file(database_url)
    config = alembic_config(database_url)
    command.upgrade(config, "0018")
    run(
        "INSERT INTO profiles_segment_changes (source_id, subject, segment_key, joined, cause, at)"
        " VALUES (:source, :subject, :key, :joined, :cause, :at)",
        *(
            {
                "source": s,
                "subject": subject,
                "key": key,
                "joined": joined,
                "cause": cause,
                "at": at,
            }
            for s, subject, key, joined, cause in _OLD_CHANGES
        ),
    )
    command.upgrade(config, "head")
    columns = "id, subject, joined_keys, left_keys, cause"
    assert run(f"SELECT {columns} FROM profiles_segment_changes ORDER BY id") == [
        (1, "p1_a", " active ", "", "event:m1"),
        (2, "p1_a", " pro ", "", "event:m1"),
        (3, "p1_b", "", " active ", "window:2026-11-30"),
    ]
    run("DELETE FROM profiles_segment_changes WHERE id < :below", {"below": 3})
    run(  # a row of the new shape: keys joined and left at once
        "INSERT INTO profiles_segment_changes (source_id, subject, joined_keys, left_keys, cause,"
        " at) VALUES ('src', 'p1_a', ' active pro ', ' trial ', 'event:m2', :at)",
        {"at": at},
    )
    command.downgrade(config, "0018")
    columns = "subject, segment_key, joined, cause"
    assert run(f"SELECT {columns} FROM profiles_segment_changes ORDER BY id") == [
        ("p1_b", "active", False, "window:2026-11-30"),
        ("p1_a", "active", True, "event:m2"),
        ("p1_a", "pro", True, "event:m2"),
        ("p1_a", "trial", False, "event:m2"),
    ]


def test_the_change_log_compacts_on_sqlite(tmp_path: Any) -> None:
    _compacts_the_change_log(f"sqlite:///{tmp_path}/changes.db")


@pytest.mark.postgres
def test_the_change_log_compacts_on_postgresql(postgres_database: str) -> None:
    _compacts_the_change_log(postgres_database)
