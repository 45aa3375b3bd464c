"""retired source keys (rotation with an overlap)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 04:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_retired_keys",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_gateway_retired_keys")),
    )
    with op.batch_alter_table("gateway_retired_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_retired_keys_source_id"), ["source_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_retired_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_retired_keys_source_id"))
    op.drop_table("gateway_retired_keys")
