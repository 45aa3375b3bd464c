"""Identity stitching: which profile a pseudonym's events belong to, and the links that say so.

`identify` with both a userId and an anonymousId, and `alias` with a previousId, link the
second pseudonym to the first one's profile and fold its profile in (profiles._apply.merge_states).
Links always point at a profile's own subject (a root), so resolving is one lookup.

An anonymous id identified as a second, different user (a shared device) is not merged again:
it stays with the first, and two users' profiles merge only through an explicit `alias`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from bus import EventEnvelope, select_in
from profiles._tables import IdentityLinkRow

_links = cast(Table, IdentityLinkRow.__table__)


def stitch_pair(envelope: EventEnvelope) -> tuple[str, str] | None:
    """(the pseudonym to fold in, the profile it joins) when an event links two identities."""
    if envelope.subject is None:
        return None
    if envelope.type == "identify" and envelope.anonymous:
        other = envelope.anonymous
    elif envelope.type == "alias" and envelope.previous:
        other = envelope.previous
    else:
        return None
    return (other, envelope.subject) if other != envelope.subject else None


class IdentityGraph:
    """One source's links, as far as one transaction needs them; changes written at `save`."""

    def __init__(self, conn: Connection, source_id: str, pseudonyms: Iterable[str]) -> None:
        self._conn = conn
        self._source_id = source_id
        wanted = list(set(pseudonyms))
        self._links: dict[str, str] = {}
        if wanted:
            found = select_in(
                conn, _links, ("alias", "canonical"), "source_id", source_id, "alias", wanted
            )
            self._links = dict(found)
        self._new: dict[str, str] = {}  # alias -> (message id) linked in this transaction
        self._message: dict[str, str] = {}
        self._repointed: list[tuple[str, str]] = []

    def resolve(self, pseudonym: str) -> str:
        return self._links.get(pseudonym, pseudonym)

    def is_linked(self, pseudonym: str) -> bool:
        return pseudonym in self._links

    def link(self, alias: str, canonical: str, message_id: str) -> None:
        """`alias` (a root until now) and everything linked to it now belong to `canonical`."""
        for known, root in list(self._links.items()):
            if root == alias:
                self._links[known] = canonical
                if known in self._new:
                    self._new[known] = canonical
        self._repointed.append((alias, canonical))
        self._links[alias] = canonical
        self._new[alias] = canonical
        self._message[alias] = message_id

    def save(self) -> None:
        source = self._source_id
        for old, new in self._repointed:
            self._conn.execute(
                update(_links)
                .where(_links.c.source_id == source, _links.c.canonical == old)
                .values(canonical=new)
            )
        if self._new:
            self._conn.execute(
                delete(_links).where(
                    _links.c.source_id == source, _links.c.alias.in_(list(self._new))
                )
            )
            now = datetime.now(UTC)
            self._conn.execute(
                insert(_links),
                [
                    {
                        "source_id": source,
                        "alias": alias,
                        "canonical": canonical,
                        "message_id": self._message[alias],
                        "linked_at": now,
                    }
                    for alias, canonical in self._new.items()
                ],
            )


def resolve_one(conn: Connection, source_id: str, pseudonym: str) -> str:
    """The profile `pseudonym`'s events belong to (itself unless it was linked)."""
    query = select(_links.c.canonical).where(
        _links.c.source_id == source_id, _links.c.alias == pseudonym
    )
    canonical = conn.execute(query).scalar()
    return canonical or pseudonym


def linked_identities(conn: Connection, source_id: str, pseudonyms: Iterable[str]) -> set[str]:
    """`pseudonyms` with every pseudonym linked to or from them: one person's identities."""
    found = set(pseudonyms)
    for _ in range(3):  # links point at roots: alias -> root -> its aliases is two steps
        rows = conn.execute(
            select(_links.c.alias, _links.c.canonical).where(
                _links.c.source_id == source_id,
                or_(_links.c.alias.in_(list(found)), _links.c.canonical.in_(list(found))),
            )
        ).all()
        grown = found | {row.alias for row in rows} | {row.canonical for row in rows}
        if grown == found:
            break
        found = grown
    return found


def forget_links(conn: Connection, source_id: str, pseudonyms: Iterable[str]) -> int:
    wanted = list(pseudonyms)
    return int(
        conn.execute(
            delete(_links).where(
                _links.c.source_id == source_id,
                or_(_links.c.alias.in_(wanted), _links.c.canonical.in_(wanted)),
            )
        ).rowcount
        or 0
    )
