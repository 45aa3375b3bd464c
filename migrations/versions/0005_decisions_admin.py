"""decision log and admin tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 21:43:07.565102
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_admin_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_gateway_admin_tokens")),
    )
    op.create_table(
        "observability_decisions",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("anonymous", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=512), nullable=True),
        sa.Column("purposes_required", sa.JSON(), nullable=False),
        sa.Column("purposes_allowed", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("consent_ref", sa.String(length=64), nullable=True),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint(
            "source_id", "message_id", "decided_at", name=op.f("pk_observability_decisions")
        ),
    )
    with op.batch_alter_table("observability_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_observability_decisions_decided_at", ["decided_at"], unique=False)
        batch_op.create_index(
            "ix_observability_decisions_subject",
            ["source_id", "subject", "decided_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("observability_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_observability_decisions_subject")
        batch_op.drop_index("ix_observability_decisions_decided_at")

    op.drop_table("observability_decisions")
    op.drop_table("gateway_admin_tokens")
