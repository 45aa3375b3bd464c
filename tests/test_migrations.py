"""Migrations create every table, on SQLite and PostgreSQL, with no drift from the models."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
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
