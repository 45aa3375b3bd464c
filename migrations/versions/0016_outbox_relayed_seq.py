"""outbox units relayed to NATS JetStream remember the stream sequence JetStream acked, so
that after a NATS restart only what the stream lost is relayed again

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 13:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bus_outbox") as batch:
        batch.add_column(sa.Column("relayed_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bus_outbox") as batch:
        batch.drop_column("relayed_seq")
