"""profiles_segment_changes: one row per subject and cause, with the keys joined and left,
instead of one row per segment (a new profile joins tens of segments at once)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "profiles_segment_changes"


def upgrade() -> None:
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("joined_keys", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("left_keys", sa.Text(), server_default="", nullable=False))
    # each earlier row keeps its id: the ids page the change log
    op.execute(
        f"""
        UPDATE {_TABLE}
        SET joined_keys = CASE WHEN joined THEN ' ' || segment_key || ' ' ELSE '' END,
            left_keys = CASE WHEN joined THEN '' ELSE ' ' || segment_key || ' ' END
        """  # noqa: S608
    )
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.drop_column("joined")
        batch_op.drop_column("segment_key")


def downgrade() -> None:
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("segment_key", sa.String(length=100), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("joined", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    table = sa.table(
        _TABLE,
        sa.column("id", sa.Integer()),
        sa.column("source_id", sa.String()),
        sa.column("subject", sa.String()),
        sa.column("segment_key", sa.String()),
        sa.column("joined", sa.Boolean()),
        sa.column("joined_keys", sa.Text()),
        sa.column("left_keys", sa.Text()),
        sa.column("cause", sa.String()),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
    conn.execute(sa.delete(table))
    split = [
        {
            "source_id": row.source_id,
            "subject": row.subject,
            "segment_key": key,
            "joined": joined,
            "joined_keys": "",
            "left_keys": "",
            "cause": row.cause,
            "at": row.at,
        }
        for row in rows
        for keys, joined in ((row.joined_keys, True), (row.left_keys, False))
        for key in keys.split()
    ]
    if split:
        conn.execute(sa.insert(table), split)
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.drop_column("left_keys")
        batch_op.drop_column("joined_keys")
