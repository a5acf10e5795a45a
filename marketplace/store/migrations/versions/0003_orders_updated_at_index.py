"""orders updated_at index: the seller view's frequent catch-up reads recent orders only

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 03:29:10.917718
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_updated_at"))
