"""Indexes by model and time on alerts, triggers and stage_history; Driftline 0.1's
``schema_version`` table goes (Alembic's ``alembic_version`` replaces it).

Revision ID: 0002. Revises: 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_alerts_model_created": ("alerts", ["model", "created_at_ms"]),
    "ix_triggers_model_created": ("triggers", ["model", "created_at_ms"]),
    "ix_stage_history_model_version": ("stage_history", ["model", "version"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)
    if sa.inspect(op.get_bind()).has_table("schema_version"):
        op.drop_table("schema_version")


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
