"""Tables owned by the personalization package (its own MetaData)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, MetaData, String, func, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class FlagRow(Base):
    """A feature flag or remote config (an `object` flag), as DESIGN shapes it."""

    __tablename__ = "personalization_flags"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    origin: Mapped[str] = mapped_column(String(16))  # "api" or "file"


class FlowRow(Base):
    """An onboarding flow with its baseline and experiment variants, as DESIGN shapes it."""

    __tablename__ = "personalization_flows"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExposureRow(Base):
    """A subject's first exposure to a flow: its (sticky) variant, pseudonymously."""

    __tablename__ = "personalization_exposures"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_key: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    variant: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(16))
    exposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def save_version(
    conn: Any, table: Any, key: str, values: dict[str, Any], cap: int, noun: str
) -> tuple[int, datetime]:
    """Insert or replace the definition `key` of `table` (flags, flows) with the next version;
    refuse a new one past `cap` (ValueError naming $.key). Returns (version, updated_at)."""
    current = conn.execute(select(table.c.version).where(table.c.key == key)).scalar()
    if current is None:
        count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if count >= cap:
            raise CapReached(f"at most {cap} {noun} at $.key")
    now = datetime.now(UTC)
    version = (current or 0) + 1
    row = {**values, "version": version, "updated_at": now}
    if current is None:
        conn.execute(insert(table).values(key=key, **row))
    else:
        conn.execute(update(table).where(table.c.key == key).values(row))
    return version, now


class CapReached(ValueError):
    """A new definition past the store's cap."""
