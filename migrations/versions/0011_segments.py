"""segments, their members, and the profile state rules read (day counts, consent)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("day_counts", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("consent", sa.JSON(), server_default="[]", nullable=False))
    op.create_table(
        "profiles_segments",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_profiles_segments")),
    )
    op.create_table(
        "profiles_segment_members",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("segment_key", sa.String(length=100), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "subject", "segment_key", name=op.f("pk_profiles_segment_members")
        ),
    )
    with op.batch_alter_table("profiles_segment_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profiles_segment_members_segment_key"), ["segment_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("profiles_segment_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profiles_segment_members_segment_key"))
    op.drop_table("profiles_segment_members")
    op.drop_table("profiles_segments")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("consent")
        batch_op.drop_column("day_counts")
