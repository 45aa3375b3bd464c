"""identity links, computed-trait state, segment changes and backfill, source-declared traits

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("accumulated", sa.JSON(), server_default="{}", nullable=False)
        )
    with op.batch_alter_table("profiles_segments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("backfill_done", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("backfill_total", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("backfilled_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("backfill_after", sa.String(length=140), server_default="", nullable=False)
        )
    op.create_table(
        "profiles_identity_links",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("canonical", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "alias", name=op.f("pk_profiles_identity_links")),
    )
    with op.batch_alter_table("profiles_identity_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profiles_identity_links_canonical"), ["canonical"], unique=False
        )
    op.create_table(
        "profiles_segment_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("segment_key", sa.String(length=100), nullable=False),
        sa.Column("joined", sa.Boolean(), nullable=False),
        sa.Column("cause", sa.String(length=160), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles_segment_changes")),
    )
    with op.batch_alter_table("profiles_segment_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profiles_segment_changes_source_id_subject"),
            ["source_id", "subject"],
            unique=False,
        )
    op.create_table(
        "profiles_source_traits",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("definitions", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_profiles_source_traits")),
    )
    op.create_table(
        "profiles_marks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_profiles_marks")),
    )


def downgrade() -> None:
    op.drop_table("profiles_marks")
    op.drop_table("profiles_source_traits")
    with op.batch_alter_table("profiles_segment_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profiles_segment_changes_source_id_subject"))
    op.drop_table("profiles_segment_changes")
    with op.batch_alter_table("profiles_identity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profiles_identity_links_canonical"))
    op.drop_table("profiles_identity_links")
    with op.batch_alter_table("profiles_segments", schema=None) as batch_op:
        batch_op.drop_column("backfill_after")
        batch_op.drop_column("backfilled_version")
        batch_op.drop_column("backfill_total")
        batch_op.drop_column("backfill_done")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("accumulated")
