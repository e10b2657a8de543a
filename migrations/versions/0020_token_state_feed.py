"""Token state feed: a version counter and change rows, kept by triggers, from which every
worker's userinfo/introspection cache learns of revocations within a second
(idp/token_state_triggers.py, issue 15)

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

from idp import token_state_triggers

revision = "0020"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_token_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_token_state")),
    )
    op.create_table(
        "idp_token_state_change",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version", "kind", "key", name=op.f("pk_idp_token_state_change")),
    )
    token_state_triggers.create_triggers(op.get_bind())


def downgrade() -> None:
    token_state_triggers.drop_triggers(op.get_bind())
    op.drop_table("idp_token_state_change")
    op.drop_table("idp_token_state")
