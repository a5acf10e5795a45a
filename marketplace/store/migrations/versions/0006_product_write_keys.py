"""product write keys: the Idempotency-Key of each PATCH, PUT or DELETE /v1/products/{id}
that sent one, with the product as that write left it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 13:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_write_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("route_key", sa.BigInteger(), nullable=False),
        sa.Column("caller_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("product", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_write_keys")),
    )
    with op.batch_alter_table("product_write_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_product_write_keys_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_product_write_keys_route_key"), ["route_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("product_write_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_write_keys_route_key"))
        batch_op.drop_index(batch_op.f("ix_product_write_keys_created_at"))

    op.drop_table("product_write_keys")
