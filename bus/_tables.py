"""Tables owned by the bus package (its own MetaData)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class OutboxRow(Base):
    """One publish (its messages, encoded together), deleted once they are processed (or,
    relayed to JetStream, once JetStream has surely synced them)."""

    __tablename__ = "bus_outbox"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    messages: Mapped[bytes] = mapped_column(LargeBinary)
    message_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200))
    # relayed to NATS JetStream at: kept until JetStream has surely synced it to disk, and
    # relayed again if NATS restarts before then (see bus/_jetstream.py)
    relayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the stream sequence JetStream acked for the unit's last message: whether the stream
    # still holds it says whether a NATS restart lost the unit
    relayed_seq: Mapped[int | None] = mapped_column(BigInteger)


class DeadLetterRow(Base):
    """A message that failed `max_attempts` times on its own: kept for inspection and replay."""

    __tablename__ = "bus_dead_letters"

    id: Mapped[int] = mapped_column(_RowId, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(128), index=True)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))


outbox = cast(Table, OutboxRow.__table__)
dead_letters = cast(Table, DeadLetterRow.__table__)
