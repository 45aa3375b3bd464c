"""decisions are looked up by trace id (the compliance console's lookup)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 15:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_observability_decisions_trace_id", "observability_decisions", ["trace_id"])


def downgrade() -> None:
    op.drop_index("ix_observability_decisions_trace_id", "observability_decisions")
