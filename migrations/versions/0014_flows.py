"""onboarding flows and their exposures (personalization)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "personalization_flows",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_personalization_flows")),
    )
    op.create_table(
        "personalization_exposures",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("flow_key", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("exposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "subject", "flow_key", name=op.f("pk_personalization_exposures")
        ),
    )
    with op.batch_alter_table("personalization_exposures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_personalization_exposures_flow_key"), ["flow_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("personalization_exposures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_personalization_exposures_flow_key"))
    op.drop_table("personalization_exposures")
    op.drop_table("personalization_flows")
