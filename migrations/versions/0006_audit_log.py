"""audit log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 21:47:37.761214
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "observability_audit_checkpoints",
        sa.Column("tree_size", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_observability_audit_checkpoints")),
    )
    op.create_table(
        "observability_audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("chain", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_observability_audit_log")),
    )
    with op.batch_alter_table("observability_audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_observability_audit_log_kind"), ["kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("observability_audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observability_audit_log_kind"))

    op.drop_table("observability_audit_log")
    op.drop_table("observability_audit_checkpoints")
