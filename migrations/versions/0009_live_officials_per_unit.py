"""SCIM paging: live officials by unit (the count of a page reads only the caller's units)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 20:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('idp_account_profile', schema=None) as batch_op:
        batch_op.create_index(
            'ix_idp_account_profile_live_unit',
            ['unit_id'],
            unique=False,
            postgresql_where=sa.text('deleted_at IS NULL'),
            sqlite_where=sa.text('deleted_at IS NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('idp_account_profile', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_account_profile_live_unit')
