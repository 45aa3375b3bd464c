"""Tables owned by the gateway: sources, their current and retired key hashes, subject and
admin tokens (every key and token stored only as a hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class SourceRow(Base):
    __tablename__ = "gateway_sources"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(16))
    write_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    server_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the source's consent configuration (consent.ConsentConfig as JSON); {} for the defaults
    consent_config: Mapped[dict[str, Any]] = mapped_column(JSON, server_default="{}")
    # the source's field policy (anonymization.FieldPolicy as JSON); {} for the defaults
    field_policy: Mapped[dict[str, Any]] = mapped_column(JSON, server_default="{}")
    # whose pseudonym keys the source uses: its own id, or a workspace's first source's id
    key_scope: Mapped[str | None] = mapped_column(String(64))
    # rate limit and allowed browser origins (gateway.edge.EdgeConfig as JSON); {}: defaults
    edge_config: Mapped[dict[str, Any]] = mapped_column(JSON, server_default="{}")


class SubjectTokenRow(Base):
    """Subject tokens minted, kept so that they can be revoked before they expire."""

    __tablename__ = "gateway_subject_tokens"

    token_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdminTokenRow(Base):
    """Admin and auditor tokens, stored only as hashes."""

    __tablename__ = "gateway_admin_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RetiredKeyRow(Base):
    """A source's replaced write or server key, accepted until `expires_at` (the overlap a
    rotation grants, so that deployed apps can move to the new key)."""

    __tablename__ = "gateway_retired_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # write_key_hash | server_key_hash
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
