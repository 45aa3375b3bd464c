"""Privacy requests as rows: insert, read, list, update, and the lease that keeps two replicas
from advancing one request together. The process itself is in `gateway/privacy.py`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_, select, update

from bus import Database
from gateway._tables import PrivacyRequestRow

_requests = cast(Table, PrivacyRequestRow.__table__)
_LEASE = timedelta(seconds=60)


async def insert(database: Database, row: dict[str, Any]) -> None:
    await database.transaction(lambda conn: conn.execute(_requests.insert().values(row)))


async def get(database: Database, request_id: str) -> dict[str, Any] | None:
    query = select(_requests).where(_requests.c.request_id == request_id)
    row = await database.read(lambda conn: conn.execute(query).first())
    return dict(row._mapping) if row is not None else None


async def listing(
    database: Database,
    *,
    source_id: str | None = None,
    status: str | None = None,
    subject: str | None = None,
    limit: int = 100,
    open_only: bool = False,
    after: tuple[datetime, str] | None = None,
) -> list[dict[str, Any]]:
    """Requests, the nearest deadline first (the queue compliance teams work through);
    `after` is the (deadline, id) of the last one of the previous page."""
    query = select(_requests).order_by(_requests.c.deadline, _requests.c.request_id).limit(limit)
    if after is not None:
        deadline, request_id = after
        query = query.where(
            (_requests.c.deadline > deadline)
            | ((_requests.c.deadline == deadline) & (_requests.c.request_id > request_id))
        )
    if open_only:
        query = query.where(_requests.c.status != "completed")
    if source_id is not None:
        query = query.where(_requests.c.source_id == source_id)
    if status is not None:
        query = query.where(_requests.c.status == status)
    if subject is not None:
        query = query.where(_requests.c.subject == subject)
    return await database.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])


async def open_ids(database: Database) -> list[tuple[str, str]]:
    """(request_id, source_id) of every request not completed."""
    query = select(_requests.c.request_id, _requests.c.source_id).where(
        _requests.c.status != "completed"
    )
    return await database.read(lambda conn: [tuple(row) for row in conn.execute(query)])


async def update_row(database: Database, request_id: str, **values: Any) -> None:
    statement = update(_requests).where(_requests.c.request_id == request_id).values(**values)
    await database.transaction(lambda conn: conn.execute(statement))


async def claim(database: Database, request_id: str) -> datetime | None:
    """Take the lease on an open request; its expiry, or None when another holds it."""
    now = datetime.now(UTC)
    lease = now + _LEASE
    statement = (
        update(_requests)
        .where(
            _requests.c.request_id == request_id,
            _requests.c.status != "completed",
            or_(_requests.c.claimed_until.is_(None), _requests.c.claimed_until < now),
        )
        .values(claimed_until=lease)
    )
    claimed = await database.transaction(lambda conn: conn.execute(statement).rowcount)
    return lease if claimed else None


async def release(database: Database, request_id: str, lease: datetime) -> None:
    """Give the lease back, unless it lapsed and another replica holds it now."""
    statement = (
        update(_requests)
        .where(_requests.c.request_id == request_id, _requests.c.claimed_until == lease)
        .values(claimed_until=None)
    )
    await database.transaction(lambda conn: conn.execute(statement))
