"""item names for the exact-name rule of hybrid search

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:40:00.000000
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("name_key", sa.Text(), nullable=True))
        batch_op.create_index("ix_items_name_key", ["name_key"], unique=False)
    # Existing items take their name as a build would: the `name` metadata field, else
    # the text's leading label before a colon.
    from indexer.terms import item_name, name_key

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, text, metadata FROM items")).all()
    updates = []
    for item_id, text, meta in rows:
        name = item_name(json.loads(meta).get("name"), text)
        updates.append({"i": item_id, "n": name, "k": name_key(name) if name else None})
    if updates:
        conn.execute(sa.text("UPDATE items SET name = :n, name_key = :k WHERE id = :i"), updates)


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_name_key")
        batch_op.drop_column("name_key")
        batch_op.drop_column("name")
