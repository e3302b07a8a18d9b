"""shared layouts of the approximate index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ann_layouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_fp", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("nlist", sa.Integer(), nullable=False),
        sa.Column("nprobe", sa.Integer(), nullable=False),
        sa.Column("trained_count", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("centroids", sa.LargeBinary(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("recall_at_10", sa.Float(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ann_layouts", schema=None) as batch_op:
        batch_op.create_index("ux_ann_layouts_epoch", ["model_fp", "kind", "epoch"], unique=True)


def downgrade() -> None:
    op.drop_table("ann_layouts")
