"""Where each source's declared computed traits are kept, and the core's cached view of them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from profiles._apply import ApplyOptions
from profiles._custom import TraitDefinition, custom_values, load_trait_config
from profiles._state import ProfileState
from profiles._tables import SourceTraitsRow

_source_traits = cast(Table, SourceTraitsRow.__table__)
DEFINITIONS_SECONDS = 1.0  # how long the core keeps what it read before reading it again


def put_source_traits(conn: Connection, source_id: str, config: Mapping[str, Any]) -> int:
    """Declare the source's computed traits (replacing any before); validated first. Runs in
    the caller's transaction, beside the source's own change. Returns how many there are."""
    definitions = load_trait_config(config)
    if not definitions:
        conn.execute(delete(_source_traits).where(_source_traits.c.source_id == source_id))
        return 0
    dialect = conn.dialect.name
    upsert = (
        postgresql_insert(_source_traits)
        if dialect == "postgresql"
        else sqlite_insert(_source_traits)
    )
    values = {
        "source_id": source_id,
        "definitions": msgspec.to_builtins(list(definitions)),
        "updated_at": datetime.now(UTC),
    }
    conn.execute(
        upsert.values(values).on_conflict_do_update(
            index_elements=[_source_traits.c.source_id],
            set_={"definitions": values["definitions"], "updated_at": values["updated_at"]},
        )
    )
    return len(definitions)


def read_source_traits(conn: Connection, source_id: str) -> tuple[TraitDefinition, ...]:
    query = select(_source_traits.c.definitions).where(_source_traits.c.source_id == source_id)
    stored = conn.execute(query).scalar()
    return load_trait_config({"computed_traits": stored or []})


class SourceTraits:
    """The declarations, read again at most every DEFINITIONS_SECONDS."""

    def __init__(self) -> None:
        self._read_at = float("-inf")
        self._by_source: dict[str, tuple[TraitDefinition, ...]] = {}

    def definitions(self, conn: Connection, source_id: str) -> tuple[TraitDefinition, ...]:
        now = time.monotonic()
        if now - self._read_at >= DEFINITIONS_SECONDS:
            rows = conn.execute(select(_source_traits)).all()
            self._by_source = {
                row.source_id: load_trait_config({"computed_traits": row.definitions})
                for row in rows
            }
            self._read_at = now
        return self._by_source.get(source_id, ())

    @staticmethod
    def values(state: ProfileState, options: ApplyOptions) -> dict[str, Any]:
        return custom_values(state.accumulated.custom, options.definitions)
