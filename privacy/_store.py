"""Privacy requests as rows: insert, read, list, update, and the lease that keeps two replicas
from advancing one request together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, or_, select, update

from bus import Database, as_utc
from privacy._model import PrivacyRequest, StoreReceipt
from privacy._tables import PrivacyRequestRow

_requests = cast(Table, PrivacyRequestRow.__table__)
LEASE = timedelta(seconds=60)


def _from_row(row: Any) -> PrivacyRequest:
    values = dict(row._mapping)
    values.pop("claimed_until", None)
    for name in ("received_at", "deadline", "completed_at"):
        if values[name] is not None:
            values[name] = as_utc(values[name])
    values["receipts"] = [StoreReceipt(**receipt) for receipt in values["receipts"]]
    return msgspec.convert(values, PrivacyRequest, from_attributes=True)


class RequestStore:
    """The `privacy_requests` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(self, request: PrivacyRequest) -> None:
        values = {**msgspec.to_builtins(request), "receipts": []}
        values.update(received_at=request.received_at, deadline=request.deadline)
        await self._db.transaction(lambda conn: conn.execute(_requests.insert().values(values)))

    async def get(self, request_id: str) -> PrivacyRequest | None:
        query = select(_requests).where(_requests.c.request_id == request_id)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return _from_row(row) if row is not None else None

    async def listing(
        self,
        *,
        source_id: str | None = None,
        status: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        open_only: bool = False,
        after: tuple[datetime, str] | None = None,
        latest_first: bool = False,
    ) -> list[PrivacyRequest]:
        """Requests, the nearest deadline first (the queue compliance teams work through);
        `after` is the (deadline, id) of the last one of the previous page. `latest_first`
        turns the order round (what was done lately)."""
        order = (_requests.c.deadline, _requests.c.request_id)
        query = (
            select(_requests)
            .order_by(*(column.desc() for column in order) if latest_first else order)
            .limit(limit)
        )
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
        return await self._db.read(lambda conn: [_from_row(r) for r in conn.execute(query)])

    async def set_receipts(self, request: PrivacyRequest) -> None:
        receipts = [msgspec.to_builtins(receipt) for receipt in request.receipts]
        await self._update(request.request_id, receipts=receipts)

    async def set_status(self, request: PrivacyRequest) -> None:
        values: dict[str, Any] = {"status": request.status, "completed_at": request.completed_at}
        if request.status == "completed":
            values["claimed_until"] = None  # in the same commit: a completed one holds no lease
        await self._update(request.request_id, **values)

    async def _update(self, request_id: str, **values: Any) -> None:
        statement = update(_requests).where(_requests.c.request_id == request_id).values(values)
        await self._db.transaction(lambda conn: conn.execute(statement))

    async def claim(self, request_id: str) -> datetime | None:
        """Take the lease on an open request; its expiry, or None when another holds it."""
        now = datetime.now(UTC)
        lease = now + LEASE
        statement = (
            update(_requests)
            .where(
                _requests.c.request_id == request_id,
                _requests.c.status != "completed",
                or_(_requests.c.claimed_until.is_(None), _requests.c.claimed_until < now),
            )
            .values(claimed_until=lease)
        )
        claimed = await self._db.transaction(lambda conn: conn.execute(statement).rowcount)
        return lease if claimed else None

    async def release(self, request_id: str, lease: datetime) -> None:
        """Give the lease back, unless it lapsed and another replica holds it now."""
        statement = (
            update(_requests)
            .where(_requests.c.request_id == request_id, _requests.c.claimed_until == lease)
            .values(claimed_until=None)
        )
        await self._db.transaction(lambda conn: conn.execute(statement))
