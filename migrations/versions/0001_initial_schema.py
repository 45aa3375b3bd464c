"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 20:44:28.218565
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_sources",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("write_key_hash", sa.String(length=64), nullable=False),
        sa.Column("server_key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_gateway_sources")),
        sa.UniqueConstraint("server_key_hash", name=op.f("uq_gateway_sources_server_key_hash")),
        sa.UniqueConstraint("write_key_hash", name=op.f("uq_gateway_sources_write_key_hash")),
    )
    op.create_table(
        "bus_dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_dead_letters")),
    )
    with op.batch_alter_table("bus_dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bus_dead_letters_message_id"), ["message_id"], unique=False
        )

    op.create_table(
        "bus_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("messages", sa.LargeBinary(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_outbox")),
    )
    op.create_table(
        "profiles",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("event_counts", sa.JSON(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "subject", name=op.f("pk_profiles")),
    )
    op.create_table(
        "profiles_processed_messages",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "message_id", name=op.f("pk_profiles_processed_messages")
        ),
    )
    with op.batch_alter_table("profiles_processed_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profiles_processed_messages_processed_at"),
            ["processed_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("profiles_processed_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profiles_processed_messages_processed_at"))

    op.drop_table("profiles_processed_messages")
    op.drop_table("profiles")
    op.drop_table("bus_outbox")
    with op.batch_alter_table("bus_dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bus_dead_letters_message_id"))

    op.drop_table("bus_dead_letters")
    op.drop_table("gateway_sources")
