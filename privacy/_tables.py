"""The privacy package's table: the requests, their status, receipts and lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class PrivacyRequestRow(Base):
    """An erasure, access or opt-out request: its subject's pseudonyms, status and receipts."""

    __tablename__ = "privacy_requests"

    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # the subject's current pseudonym; `subjects` adds older key versions' and anonymous ids'
    subject: Mapped[str] = mapped_column(String(64), index=True)
    subjects: Mapped[list[str]] = mapped_column(JSON)
    purposes: Mapped[list[str]] = mapped_column(JSON)
    requested_by: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # a lease: the replica advancing the request holds it until then (privacy._process)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # one receipt per store: {"store", "action", "count", "at"}
    receipts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
