"""Back-channel and front-channel logout: client logout URIs, delivery log (issue 5)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 17:20:00
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults: clients registered before this revision stay valid (no logout URI,
    # session required as both specs default).
    with op.batch_alter_table('idp_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backchannel_logout_uri', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('backchannel_logout_session_required', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('frontchannel_logout_uri', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('frontchannel_logout_session_required', sa.Boolean(), server_default=sa.true(), nullable=False))

    op.create_table('idp_logout_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_pk', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('last_attempt_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('finished_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('log', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['client_pk'], ['idp_client.id'], name=op.f('fk_idp_logout_delivery_client_pk_idp_client'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_logout_delivery'))
    )
    with op.batch_alter_table('idp_logout_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_idp_logout_delivery_client_pk', ['client_pk'], unique=False)
        batch_op.create_index('ix_idp_logout_delivery_due', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idp_logout_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_logout_delivery_due')
        batch_op.drop_index('ix_idp_logout_delivery_client_pk')

    op.drop_table('idp_logout_delivery')
    with op.batch_alter_table('idp_client', schema=None) as batch_op:
        batch_op.drop_column('frontchannel_logout_session_required')
        batch_op.drop_column('frontchannel_logout_uri')
        batch_op.drop_column('backchannel_logout_session_required')
        batch_op.drop_column('backchannel_logout_uri')
