"""consent_current: each subject's latest record per purpose, kept with every insert, so that
reading a state does not grow with the subject's history; filled from consent_records

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 15:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_current",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("signal_source", sa.String(length=32), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "subject", "purpose", name=op.f("pk_consent_current")),
    )
    # the latest record per (subject, purpose), in current_state's order
    op.execute(
        """
        INSERT INTO consent_current (source_id, subject, purpose, granted, signal_source,
                                     collected_at, recorded_at, record_id)
        SELECT source_id, subject, purpose, granted, signal_source, collected_at, recorded_at,
               record_id
        FROM (
            SELECT *, row_number() OVER (
                PARTITION BY source_id, subject, purpose
                ORDER BY collected_at DESC, recorded_at DESC, record_id DESC
            ) AS rank
            FROM consent_records
        ) AS ranked
        WHERE rank = 1
        """
    )


def downgrade() -> None:
    op.drop_table("consent_current")
