"""Tables owned by the profile core (its own MetaData)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, MetaData, String, Text
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
    # the purposes the subject allows, as of its latest event or consent change
    consent: Mapped[list[str]] = mapped_column(JSON, server_default="[]")
    # clocks, sessions, flows, platform, declared traits (profiles._state.encode_accumulated)
    accumulated: Mapped[dict[str, Any]] = mapped_column(JSON, server_default="{}")


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
    # the backfill of `version` over existing profiles: profiles evaluated of those to do
    backfill_done: Mapped[int] = mapped_column(Integer, server_default="0")
    backfill_total: Mapped[int] = mapped_column(Integer, server_default="0")
    # the version the backfill has finished for (behind `version` while one runs)
    backfilled_version: Mapped[int] = mapped_column(Integer, server_default="0")
    # the (source, subject) the running backfill has reached, to resume after a restart
    backfill_after: Mapped[str] = mapped_column(String(140), server_default="")


class SegmentMemberRow(Base):
    """A subject in a segment, since when."""

    __tablename__ = "profiles_segment_members"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment_key: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdentityLinkRow(Base):
    """A pseudonym merged into another profile (an anonymous id identified, an alias): events
    of `alias` apply to `canonical`'s profile. `canonical` is always a profile's own subject."""

    __tablename__ = "profiles_identity_links"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    canonical: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(String(128))  # the identify or alias that linked
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SegmentChangeRow(Base):
    """The segments a subject joined and left at one moment, and why (an event, a merge, a
    consent change, a window sliding, a backfill): one row per subject and cause, not per
    segment, since a new profile joins tens of segments at once."""

    __tablename__ = "profiles_segment_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    # the keys, each between spaces (" active pro "; "" for none): `changed_keys`
    joined_keys: Mapped[str] = mapped_column(Text, server_default="")
    left_keys: Mapped[str] = mapped_column(Text, server_default="")
    cause: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_profiles_segment_changes_source_id_subject", "source_id", "subject"),
    )


def changed_keys(keys: Iterable[str]) -> str:
    """Segment keys as a change row keeps them: `" a b "`, so that `LIKE '% a %'` finds one
    (keys hold no space)."""
    joined = " ".join(keys)
    return f" {joined} " if joined else ""


class SourceTraitsRow(Base):
    """The computed traits a source declares (profiles._custom)."""

    __tablename__ = "profiles_source_traits"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    definitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CoreMarkRow(Base):
    """Small named marks of the core's background work (the last day windows were swept)."""

    __tablename__ = "profiles_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
