"""mining jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:17:10.929248
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("model_fp", sa.String(length=64), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("items", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("pair_count", sa.Integer(), nullable=True),
        sa.Column("left_out", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "job_pairs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("item_a", sa.Integer(), nullable=False),
        sa.Column("item_b", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "item_a", "item_b"),
    )
    with op.batch_alter_table("job_pairs", schema=None) as batch_op:
        batch_op.create_index("ix_job_pairs_job_a", ["job_id", "item_a"], unique=False)
        batch_op.create_index("ix_job_pairs_job_b", ["job_id", "item_b"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_pairs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_pairs_job_b")
        batch_op.drop_index("ix_job_pairs_job_a")

    op.drop_table("job_pairs")
    op.drop_table("jobs")
