"""Where flags and flows name segments: what a segment's deletion must not leave dangling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from personalization._tables import FlagRow, FlowRow

_flags = cast(Table, FlagRow.__table__)
_flows = cast(Table, FlowRow.__table__)


def segment_readers(conn: Connection) -> Iterator[tuple[str, Any]]:
    """(where, rule) of every targeting rule of the flags and flows defined now."""
    for key, definition in conn.execute(select(_flags.c.key, _flags.c.definition)):
        for index, rule in enumerate(definition.get("rules") or ()):
            yield f"flag {key!r} $.rules[{index}].when", rule.get("when")
    for key, definition in conn.execute(select(_flows.c.key, _flows.c.definition)):
        for index, variant in enumerate(definition.get("variants") or ()):
            yield f"flow {key!r} $.variants[{index}].when", variant.get("when")
