"""keyring

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 21:24:45.831261
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "anonymization_source_keys",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kek_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "version", name=op.f("pk_anonymization_source_keys")),
    )
    op.create_table(
        "anonymization_subject_keys",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("kek_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "subject", name=op.f("pk_anonymization_subject_keys")),
    )


def downgrade() -> None:
    op.drop_table("anonymization_subject_keys")
    op.drop_table("anonymization_source_keys")
