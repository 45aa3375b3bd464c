"""Changing sources after their creation: their settings, and their keys with an overlap.

A rotation issues a new write key and server key; the old ones are kept as retired hashes and
keep working for the overlap, so that deployed apps can move to the new keys (a leaked write
key is the first thing an operator must be able to fix). Running gateways see either change
within `SOURCE_CACHE_SECONDS`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection

from anonymization import load_field_policy
from bus import Database
from consent import Jurisdiction, load_consent_config
from gateway._tables import RetiredKeyRow, SourceRow
from gateway.edge import load_edge_config
from gateway.sources import (
    SERVER_KEY_PREFIX,
    WRITE_KEY_PREFIX,
    CreatedSource,
    hash_key,
)
from profiles import load_trait_config, put_source_traits

_sources = cast(Table, SourceRow.__table__)
_retired = cast(Table, RetiredKeyRow.__table__)
MAX_OVERLAP_HOURS = 24 * 90


class SourceNotFound(ValueError):
    """No source, or more than one, answers to the name or id given."""


def _find(conn: Connection, ref: str) -> Any:
    """The one source whose id or name is `ref`."""
    rows = conn.execute(
        select(_sources).where((_sources.c.source_id == ref) | (_sources.c.name == ref))
    ).all()
    by_id = [row for row in rows if row.source_id == ref]
    if by_id:
        return by_id[0]
    if not rows:
        raise SourceNotFound(f"no source named {ref!r} (give its name or its source id)")
    if len(rows) > 1:
        ids = ", ".join(row.source_id for row in rows)
        raise SourceNotFound(f"{len(rows)} sources are named {ref!r} ({ids}): give the source id")
    return rows[0]


async def update_source(
    database: Database,
    ref: str,
    *,
    jurisdiction: Jurisdiction | None = None,
    consent_config: dict[str, Any] | None = None,
    field_policy: dict[str, Any] | None = None,
    edge_changes: dict[str, Any] | None = None,
    computed_traits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Change what is given, validated first; returns the source's id, name and what changed."""
    if consent_config is not None:
        load_consent_config(consent_config)
    if field_policy is not None:
        load_field_policy(field_policy)
    if computed_traits is not None:
        load_trait_config(computed_traits)

    def work(conn: Connection) -> dict[str, Any]:
        row = _find(conn, ref)
        values: dict[str, Any] = {}
        if jurisdiction is not None:
            values["jurisdiction"] = jurisdiction
        if consent_config is not None:
            values["consent_config"] = consent_config
        if field_policy is not None:
            values["field_policy"] = field_policy
        if edge_changes:
            edge = {**(row.edge_config or {}), **edge_changes}
            load_edge_config(edge)
            values["edge_config"] = edge
        if not values and computed_traits is None:
            raise ValueError("nothing to change: give at least one option")
        if values:
            conn.execute(
                update(_sources).where(_sources.c.source_id == row.source_id).values(values)
            )
        changed = sorted(values)
        if computed_traits is not None:
            put_source_traits(conn, row.source_id, computed_traits)
            changed = sorted([*changed, "computed_traits"])
        return {"source_id": row.source_id, "name": row.name, "changed": changed}

    return await database.transaction(work)


async def rotate_keys(database: Database, ref: str, overlap: timedelta) -> CreatedSource:
    """New write and server keys for the source; the old ones work for `overlap` more."""
    if not timedelta(0) <= overlap <= timedelta(hours=MAX_OVERLAP_HOURS):
        raise ValueError(f"--overlap-hours: 0 to {MAX_OVERLAP_HOURS}")
    write_key = WRITE_KEY_PREFIX + secrets.token_urlsafe(32)
    server_key = SERVER_KEY_PREFIX + secrets.token_urlsafe(32)

    def work(conn: Connection) -> CreatedSource:
        row = _find(conn, ref)
        expires_at = datetime.now(UTC) + overlap
        if overlap > timedelta(0):
            conn.execute(
                insert(_retired),
                [
                    {
                        "key_hash": row.write_key_hash,
                        "source_id": row.source_id,
                        "kind": "write_key_hash",
                        "expires_at": expires_at,
                    },
                    {
                        "key_hash": row.server_key_hash,
                        "source_id": row.source_id,
                        "kind": "server_key_hash",
                        "expires_at": expires_at,
                    },
                ],
            )
        conn.execute(
            update(_sources)
            .where(_sources.c.source_id == row.source_id)
            .values(write_key_hash=hash_key(write_key), server_key_hash=hash_key(server_key))
        )
        return CreatedSource(
            source_id=row.source_id,
            name=row.name,
            jurisdiction=row.jurisdiction,
            write_key=write_key,
            server_key=server_key,
        )

    return await database.transaction(work)


async def list_sources(database: Database) -> list[dict[str, Any]]:
    """Every source without its keys, oldest first."""
    query = select(
        _sources.c.source_id,
        _sources.c.name,
        _sources.c.jurisdiction,
        _sources.c.created_at,
        _sources.c.edge_config,
    ).order_by(_sources.c.created_at)
    rows = await database.read(lambda conn: conn.execute(query).all())
    return [
        {
            "source_id": row.source_id,
            "name": row.name,
            "jurisdiction": row.jurisdiction,
            "created_at": row.created_at.isoformat(),
            "edge": row.edge_config or {},
        }
        for row in rows
    ]
