"""Tables owned by observability: the decision log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, Integer, LargeBinary, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class DecisionRow(Base):
    """One consent decision for one event; pseudonyms only."""

    __tablename__ = "observability_decisions"
    __table_args__ = (
        Index("ix_observability_decisions_subject", "source_id", "subject", "decided_at"),
        Index("ix_observability_decisions_decided_at", "decided_at"),
        Index("ix_observability_decisions_trace_id", "trace_id"),
    )

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(64))
    anonymous: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str | None] = mapped_column(String(512))
    purposes_required: Mapped[list[str]] = mapped_column(JSON)
    purposes_allowed: Mapped[list[str]] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    consent_ref: Mapped[str | None] = mapped_column(String(64))
    trace_id: Mapped[str | None] = mapped_column(String(32))


class AuditEntryRow(Base):
    """One audit entry: canonical JSON, its RFC 6962 leaf hash, and a running chain hash."""

    __tablename__ = "observability_audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    chain: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditCheckpointRow(Base):
    """A signed tree head: size, root and time, signed with Ed25519."""

    __tablename__ = "observability_audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
