"""The SQL view as Driftline 0.1 created it (its ``schema_version`` 1), without that table.

A view of Driftline 0.1 is stamped at this revision before it is upgraded
(``sqlview.upgrade``). Revision ID: 0001. Revises: none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("segment", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=255), nullable=True),
        sa.Column("severity", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_table(
        "data_ranges",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("start_offset", sa.BigInteger(), nullable=True),
        sa.Column("end_offset", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("model", "version", "topic", "partition"),
    )
    op.create_table(
        "source_offsets",
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )
    op.create_table(
        "stage_history",
        sa.Column("registry_partition", sa.Integer(), nullable=False),
        sa.Column("registry_offset", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("stage", sa.String(length=255), nullable=True),
        sa.Column("previous_stage", sa.String(length=255), nullable=True),
        sa.Column("changed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("changed_by", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("registry_partition", "registry_offset"),
    )
    op.create_table(
        "training_runs",
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=255), nullable=True),
        sa.Column("trigger_id", sa.String(length=255), nullable=True),
        sa.Column("trigger_key", sa.String(length=1000), nullable=True),
        sa.Column("gate_passed", sa.Boolean(), nullable=True),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("code_version", sa.String(length=255), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("holdout_rows", sa.BigInteger(), nullable=True),
        sa.Column("step_ms", sa.Text(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "triggers",
        sa.Column("trigger_id", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=1000), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("window_end_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_n", sa.BigInteger(), nullable=True),
        sa.Column("champion_version", sa.String(length=255), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("trigger_id"),
    )
    op.create_table(
        "versions",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("stage", sa.String(length=255), nullable=True),
        sa.Column("stage_changed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("stage_changed_by", sa.String(length=255), nullable=True),
        sa.Column("stage_reason", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("task", sa.String(length=255), nullable=True),
        sa.Column("factory", sa.String(length=1000), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("segment_metrics", sa.Text(), nullable=True),
        sa.Column("feature_spec", sa.Text(), nullable=True),
        sa.Column("gate_passed", sa.Boolean(), nullable=True),
        sa.Column("gate", sa.Text(), nullable=True),
        sa.Column("trigger_id", sa.String(length=255), nullable=True),
        sa.Column("trigger_key", sa.String(length=1000), nullable=True),
        sa.Column("training_run_id", sa.String(length=255), nullable=True),
        sa.Column("champion_version", sa.String(length=255), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("code_version", sa.String(length=255), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("params", sa.Text(), nullable=True),
        sa.Column("artifact_format", sa.String(length=255), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=True),
        sa.Column("artifact_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("artifact_uri", sa.Text(), nullable=True),
        sa.Column("registry_offset", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("model", "version"),
    )


def downgrade() -> None:
    op.drop_table("versions")
    op.drop_table("triggers")
    op.drop_table("training_runs")
    op.drop_table("stage_history")
    op.drop_table("source_offsets")
    op.drop_table("data_ranges")
    op.drop_table("alerts")
