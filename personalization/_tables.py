"""Tables owned by the personalization package (its own MetaData)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, MetaData, String
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
