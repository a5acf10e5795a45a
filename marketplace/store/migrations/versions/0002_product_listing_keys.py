"""product listing keys: the Idempotency-Key of each POST /v1/products that sent one

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 02:10:41.436307
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
        "product_keys",
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("route_key", sa.BigInteger(), nullable=False),
        sa.Column("seller_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_keys")),
        sa.UniqueConstraint("seller_id", "key", name="uq_product_keys_seller_key"),
    )
    with op.batch_alter_table("product_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_keys_route_key"), ["route_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("product_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_keys_route_key"))

    op.drop_table("product_keys")
