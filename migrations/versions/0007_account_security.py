"""Account security: TOTP credentials, recovery codes, second login step (issue 5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 17:55:00
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idp_recovery_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_recovery_code_account_id_idp_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_recovery_code'))
    )
    with op.batch_alter_table('idp_recovery_code', schema=None) as batch_op:
        batch_op.create_index('ix_idp_recovery_code_account_id', ['account_id'], unique=False)

    op.create_table('idp_totp_credential',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('sealed_secret', sa.String(length=200), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_step', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_totp_credential_account_id_idp_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_totp_credential')),
    sa.UniqueConstraint('account_id', name=op.f('uq_idp_totp_credential_account_id'))
    )
    with op.batch_alter_table('idp_interaction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_account_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_idp_interaction_mfa_account_id_idp_account'), 'idp_account', ['mfa_account_id'], ['id'], ondelete='CASCADE')



def downgrade() -> None:
    with op.batch_alter_table('idp_interaction', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_idp_interaction_mfa_account_id_idp_account'), type_='foreignkey')
        batch_op.drop_column('mfa_account_id')

    op.drop_table('idp_totp_credential')
    with op.batch_alter_table('idp_recovery_code', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_recovery_code_account_id')

    op.drop_table('idp_recovery_code')
