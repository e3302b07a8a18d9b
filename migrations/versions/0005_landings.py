"""big builds landing in slices

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = sa.text("(CURRENT_TIMESTAMP)")
    op.create_table(
        "landings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("model_fp", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("landed", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), server_default=now, nullable=False),
        sa.Column("moved_at", sa.DateTime(), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "landing_rows",
        sa.Column("landing", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("src", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("nkey", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("landing", "ext_id"),
    )
    with op.batch_alter_table("landing_rows", schema=None) as batch_op:
        batch_op.create_index("ix_landing_rows_part", ["landing", "part"], unique=False)
        batch_op.create_index("ix_landing_rows_hash", ["hash"], unique=False)


def downgrade() -> None:
    op.drop_table("landing_rows")
    op.drop_table("landings")
