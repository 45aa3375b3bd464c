"""outbox units relayed to NATS JetStream are kept until JetStream has surely synced them

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 10:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bus_outbox") as batch:
        batch.add_column(sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bus_outbox") as batch:
        batch.drop_column("relayed_at")
