"""consent records, subject tokens, source consent config

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 21:01:36.726960
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_subject_tokens",
        sa.Column("token_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_gateway_subject_tokens")),
    )
    with op.batch_alter_table("gateway_subject_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_subject_tokens_subject"), ["subject"], unique=False
        )

    op.create_table(
        "consent_records",
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("signal_source", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip_truncated", sa.String(length=64), nullable=True),
        sa.Column("user_agent_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_records_subject", ["source_id", "subject", "recorded_at"], unique=False
        )

    with op.batch_alter_table("gateway_sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("consent_config", sa.JSON(), server_default="{}", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_sources", schema=None) as batch_op:
        batch_op.drop_column("consent_config")

    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_records_subject")

    op.drop_table("consent_records")
    with op.batch_alter_table("gateway_subject_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_subject_tokens_subject"))

    op.drop_table("gateway_subject_tokens")
