"""Live officials per unit, kept by triggers: a SCIM page's total reads one row per unit of the
caller's reach instead of counting every official (idp/live_officials.py)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 07:00:00
"""

import sqlalchemy as sa
from alembic import op

from idp import live_officials

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_unit_live_officials",
        sa.Column("unit_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("live", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("unit_key", name=op.f("pk_idp_unit_live_officials")),
    )
    op.create_table(
        "idp_unit_live_officials_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("unit_key", sa.Integer(), nullable=False),
        sa.Column("change", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_unit_live_officials_change")),
    )
    with op.batch_alter_table("idp_unit_live_officials_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_unit_live_officials_change_unit_key"), ["unit_key"], unique=False
        )
    live_officials.create_triggers(op.get_bind())


def downgrade() -> None:
    live_officials.drop_triggers(op.get_bind())
    with op.batch_alter_table("idp_unit_live_officials_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_unit_live_officials_change_unit_key"))
    op.drop_table("idp_unit_live_officials_change")
    op.drop_table("idp_unit_live_officials")
