"""source field policy and key scope

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 21:31:24.864477
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("field_policy", sa.JSON(), server_default="{}", nullable=False)
        )
        batch_op.add_column(sa.Column("key_scope", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_sources", schema=None) as batch_op:
        batch_op.drop_column("key_scope")
        batch_op.drop_column("field_policy")
