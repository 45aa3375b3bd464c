"""Tables owned by the profile core (its own MetaData)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class ProfileRow(Base):
    """One pseudonymous profile per (source, subject pseudonym)."""

    __tablename__ = "profiles"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    traits: Mapped[dict[str, Any]] = mapped_column(JSON)
    event_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # event name -> {ISO day: count}, the last 30 days (the rules' `within_days`)
    day_counts: Mapped[dict[str, dict[str, int]]] = mapped_column(JSON, server_default="{}")
    # the purposes allowed for the subject's latest event: the core's view of its consent
    consent: Mapped[list[str]] = mapped_column(JSON, server_default="[]")


class ProcessedMessage(Base):
    """Message ids already applied, kept at least `dedupe_retention_hours` for dedupe."""

    __tablename__ = "profiles_processed_messages"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ErasureRow(Base):
    """A subject erased from the core: its receipt, and a tombstone for late events.

    Events the gateway accepted before the erasure, still in flight when it ran, are
    skipped when they arrive (their `received_at` is earlier); the gateway refuses later ones.
    """

    __tablename__ = "profiles_erasures"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(40), index=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    profiles_deleted: Mapped[int] = mapped_column(Integer)


class SegmentRow(Base):
    """A segment: a rule over profiles, evaluated as each event touches a subject."""

    __tablename__ = "profiles_segments"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentMemberRow(Base):
    """A subject in a segment, since when."""

    __tablename__ = "profiles_segment_members"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment_key: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
