"""The incident columns of Alert v2 on ``alerts`` (null on older rows).

Revision ID: 0003. Revises: 0002.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("incident_key", sa.String(1000)),
    ("incident_id", sa.String(255)),
    ("state", sa.String(255)),
    ("opened_at_ms", sa.BigInteger()),
    ("resolved_at_ms", sa.BigInteger()),
    ("duration_ms", sa.BigInteger()),
    ("segments", sa.Text()),
    ("versions", sa.Text()),
)


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("alerts")}
    for name, kind in COLUMNS:
        if name not in have:  # a view a pre-release projector already widened
            op.add_column("alerts", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
