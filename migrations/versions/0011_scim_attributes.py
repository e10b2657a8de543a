"""SCIM attributes a client owns; any userName (up to 256 characters); externalId indexed;
citizen IDs up to 64 characters (a directory's value that is no CCCD is kept, not refused)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idp_account", schema=None) as batch_op:
        batch_op.alter_column(
            "username", existing_type=sa.String(length=64), type_=sa.String(length=256)
        )
    with op.batch_alter_table("idp_account_profile", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scim_attributes", sa.JSON(), nullable=True))
        batch_op.alter_column(
            "citizen_id", existing_type=sa.String(length=12), type_=sa.String(length=64)
        )
        batch_op.create_index(
            batch_op.f("ix_idp_account_profile_external_id"), ["external_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_account_profile", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_account_profile_external_id"))
        batch_op.drop_column("scim_attributes")
        batch_op.alter_column(
            "citizen_id", existing_type=sa.String(length=64), type_=sa.String(length=12)
        )
    with op.batch_alter_table("idp_account", schema=None) as batch_op:
        batch_op.alter_column(
            "username", existing_type=sa.String(length=256), type_=sa.String(length=64)
        )
