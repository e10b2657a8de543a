"""SCIM Groups and fast paging: group search name, lookup indexes, live-officials index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Groups had no writer before this revision; the server default keeps any row valid.
    with op.batch_alter_table('idp_group', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('search_name', sa.String(length=200), server_default=sa.text("''"), nullable=False)
        )
        batch_op.create_index('ix_idp_group_unit_id', ['unit_id'], unique=False)
        batch_op.create_index('ix_idp_group_search_name', ['search_name'], unique=False)

    with op.batch_alter_table('idp_group_member', schema=None) as batch_op:
        batch_op.create_index('ix_idp_group_member_account_id', ['account_id'], unique=False)

    with op.batch_alter_table('idp_account_profile', schema=None) as batch_op:
        batch_op.create_index(
            'ix_idp_account_profile_live',
            ['account_id', 'unit_id'],
            unique=False,
            postgresql_where=sa.text('deleted_at IS NULL'),
            sqlite_where=sa.text('deleted_at IS NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('idp_account_profile', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_account_profile_live')

    with op.batch_alter_table('idp_group_member', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_group_member_account_id')

    with op.batch_alter_table('idp_group', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_group_search_name')
        batch_op.drop_index('ix_idp_group_unit_id')
        batch_op.drop_column('search_name')
