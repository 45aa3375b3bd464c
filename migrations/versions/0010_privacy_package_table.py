"""privacy requests move to the privacy package: gateway_privacy_requests -> privacy_requests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 05:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXED = ("source_id", "status", "subject")


def _rename(old: str, new: str) -> None:
    with op.batch_alter_table(old, schema=None) as batch_op:
        for column in _INDEXED:
            batch_op.drop_index(f"ix_{old}_{column}")
    op.rename_table(old, new)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT pk_{old} TO pk_{new}")
    with op.batch_alter_table(new, schema=None) as batch_op:
        for column in _INDEXED:
            batch_op.create_index(f"ix_{new}_{column}", [column], unique=False)


def upgrade() -> None:
    _rename("gateway_privacy_requests", "privacy_requests")


def downgrade() -> None:
    _rename("privacy_requests", "gateway_privacy_requests")
