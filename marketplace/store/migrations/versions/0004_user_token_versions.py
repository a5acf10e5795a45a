"""user token versions: a password or role change revokes the tokens issued before it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing users start at version 0, the version a token without the claim stands for, so
    # tokens issued before the upgrade stay valid until they expire or the user changes.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("tokens_revoked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_users_tokens_revoked_at"), ["tokens_revoked_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_tokens_revoked_at"))
        batch_op.drop_column("tokens_revoked_at")
        batch_op.drop_column("token_version")
