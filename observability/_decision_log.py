"""The decision log: durable with the events it decides, written off the request path.

The gateway publishes each request's decision records as one bus message beside its events,
in the same durable commit; the log writer turns them into rows when the bus delivers them.
Redelivery inserts nothing twice. Rows older than the retention are purged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import msgspec
from sqlalchemy import String, Table, delete, func, or_, select
from sqlalchemy import cast as cast_as
from sqlalchemy.engine import Connection

from bus import BusMessage, Database, insert_many, stored_json, stored_time
from observability._decisions import DecisionRecord
from observability._tables import DecisionRow

DECISIONS_SUBJECT = "decisions"
BucketUnit = Literal["hour", "day"]
_decisions = cast(Table, DecisionRow.__table__)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[DecisionRecord])


class DecisionCount(msgspec.Struct, frozen=True, kw_only=True):
    bucket: datetime  # the start of the hour or day, UTC
    action: str
    reasons: tuple[str, ...]
    count: int


def decisions_message(message_id: str, records: Sequence[DecisionRecord]) -> BusMessage:
    return BusMessage(
        subject=DECISIONS_SUBJECT, message_id=message_id, payload=_encoder.encode(list(records))
    )


class DecisionQuery(msgspec.Struct, frozen=True, kw_only=True):
    source_id: str | None = None
    subjects: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()  # keyed, as stored
    trace_id: str | None = None
    action: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    cursor: str | None = None


class DecisionLog:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._postgres = database.dialect_name == "postgresql"

    def prepare(self, messages: Sequence[BusMessage]) -> Callable[[Connection], None] | None:
        """Decode here; the returned unit inserts inside the caller's transaction."""
        records = [
            record
            for message in messages
            if message.subject == DECISIONS_SUBJECT
            for record in _decoder.decode(message.payload)
        ]
        if not records:
            return None

        def work(conn: Connection) -> None:
            # through the driver: SQLAlchemy's per-row processing cost ~10 us a decision
            insert_many(
                conn,
                _decisions,
                _DECISION_COLUMNS,
                [_to_values(conn, record) for record in records],
                skip_existing=True,
            )

        return work

    async def query(self, ask: DecisionQuery) -> tuple[list[dict[str, Any]], str | None]:
        """Matching decisions, newest first, and the cursor of the next page (or None)."""
        return await self._db.read(lambda conn: _query(conn, ask))

    async def counts(
        self, since: datetime, until: datetime, unit: BucketUnit
    ) -> list[DecisionCount]:
        """How many decisions per `unit` ("hour" or "day", in UTC), action and reasons, decided
        in [since, until): what the console charts. Counted by the database, so the answer
        stays small however many decisions there are."""
        return await self._db.read(lambda conn: _counts(conn, since, until, unit, self._postgres))

    async def erase(self, source_id: str, subjects: Sequence[str]) -> int:
        """Delete the decisions about `subjects` (an erasure); returns how many."""
        statement = delete(_decisions).where(
            _decisions.c.source_id == source_id,
            or_(_decisions.c.subject.in_(subjects), _decisions.c.anonymous.in_(subjects)),
        )
        return int(await self._db.transaction(lambda conn: conn.execute(statement).rowcount or 0))

    async def for_subjects(self, source_id: str, subjects: Sequence[str]) -> list[dict[str, Any]]:
        """Every decision about `subjects`, oldest first (an access export)."""
        query = (
            select(_decisions)
            .where(
                _decisions.c.source_id == source_id,
                or_(_decisions.c.subject.in_(subjects), _decisions.c.anonymous.in_(subjects)),
            )
            .order_by(_decisions.c.decided_at, _decisions.c.message_id)
        )
        return await self._db.read(lambda conn: [_to_item(row) for row in conn.execute(query)])

    async def purge(self, retention: timedelta) -> int:
        cutoff = datetime.now(UTC) - retention
        statement = delete(_decisions).where(_decisions.c.decided_at < cutoff)
        return int(await self._db.transaction(lambda conn: conn.execute(statement).rowcount or 0))


_DECISION_COLUMNS = (
    "source_id",
    "message_id",
    "decided_at",
    "subject",
    "anonymous",
    "type",
    "event",
    "purposes_required",
    "purposes_allowed",
    "action",
    "reasons",
    "consent_ref",
    "trace_id",
)


def _to_values(conn: Connection, record: DecisionRecord) -> tuple[Any, ...]:
    """A record's values in `_DECISION_COLUMNS`' order, as the columns store them."""
    return (
        record.source_id,
        record.message_id,
        stored_time(conn, record.decided_at),
        record.subject,
        record.anonymous,
        record.type,
        record.event,
        stored_json(list(record.purposes_required)),
        stored_json(list(record.purposes_allowed)),
        record.action,
        stored_json(list(record.reasons)),
        record.consent_ref,
        record.trace_id,
    )


def _query(conn: Connection, ask: DecisionQuery) -> tuple[list[dict[str, Any]], str | None]:
    table = _decisions
    query = select(table).order_by(table.c.decided_at.desc(), table.c.message_id.desc())
    if ask.source_id:
        query = query.where(table.c.source_id == ask.source_id)
    if ask.subjects:
        query = query.where(table.c.subject.in_(ask.subjects) | table.c.anonymous.in_(ask.subjects))
    if ask.message_ids:
        query = query.where(table.c.message_id.in_(ask.message_ids))
    if ask.trace_id:
        query = query.where(table.c.trace_id == ask.trace_id)
    if ask.action:
        query = query.where(table.c.action == ask.action)
    if ask.since:
        query = query.where(table.c.decided_at >= ask.since)
    if ask.until:
        query = query.where(table.c.decided_at < ask.until)
    if ask.cursor:
        at, message_id = decode_cursor(ask.cursor)
        query = query.where(
            (table.c.decided_at < at)
            | ((table.c.decided_at == at) & (table.c.message_id < message_id))
        )
    items: list[dict[str, Any]] = []
    last: Any = None
    for row in conn.execute(query.limit(ask.limit * 4 if ask.reason else ask.limit + 1)):
        if ask.reason and not any(
            r.partition(":")[0] == ask.reason or r == ask.reason for r in row.reasons
        ):
            continue
        if len(items) == ask.limit:
            return items, encode_cursor(last.decided_at, last.message_id)
        items.append(_to_item(row))
        last = row
    return items, None


def _counts(
    conn: Connection, since: datetime, until: datetime, unit: BucketUnit, postgres: bool
) -> list[DecisionCount]:
    table = _decisions
    if postgres:
        bucket: Any = func.date_trunc(unit, func.timezone("UTC", table.c.decided_at))
    else:  # SQLite keeps UTC times as ISO text
        pattern = "%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00"
        bucket = func.strftime(pattern, table.c.decided_at)
    reasons = cast_as(table.c.reasons, String)
    query = (
        select(bucket.label("bucket"), table.c.action, reasons.label("reasons"), func.count())
        .where(table.c.decided_at >= since, table.c.decided_at < until)
        .group_by(bucket, table.c.action, reasons)
    )
    found = []
    for at, action, reason_text, count in conn.execute(query):
        moment = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        found.append(
            DecisionCount(
                bucket=moment.replace(tzinfo=UTC),
                action=action,
                reasons=tuple(json.loads(reason_text)),
                count=count,
            )
        )
    return found


def _to_item(row: Any) -> dict[str, Any]:
    decided = row.decided_at if row.decided_at.tzinfo else row.decided_at.replace(tzinfo=UTC)
    return {
        "message_id": row.message_id,
        "source_id": row.source_id,
        "subject": row.subject,
        "anonymous": row.anonymous,
        "type": row.type,
        "event": row.event,
        "purposes_required": row.purposes_required,
        "purposes_allowed": row.purposes_allowed,
        "action": row.action,
        "reasons": row.reasons,
        "consent_ref": row.consent_ref,
        "trace_id": row.trace_id,
        "decided_at": decided,
    }


def encode_cursor(at: datetime, message_id: str) -> str:
    """An opaque page cursor: the (time, id) of the last item served."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{message_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, message_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), message_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor: not a cursor this endpoint gave") from None
