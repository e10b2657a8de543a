"""initial schema: idp and audit tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 14:47:06.672640
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_chain_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    # The single chain-head row exists from the start, so concurrent first appends never race
    # to create it.
    op.bulk_insert(
        sa.table('audit_chain_head', sa.column('id', sa.Integer), sa.column('last_seq', sa.Integer),
                 sa.column('last_hash', sa.String)),
        [{'id': 1, 'last_seq': 0, 'last_hash': '0' * 64}],
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('entry_hash', name=op.f('uq_audit_log_entry_hash'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)

    op.create_table('idp_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('email_verified', sa.Boolean(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=512), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('is_system_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('password_changed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_account')),
    sa.UniqueConstraint('subject', name=op.f('uq_idp_account_subject')),
    sa.UniqueConstraint('username', name=op.f('uq_idp_account_username'))
    )
    op.create_table('idp_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('secret_digest', sa.String(length=64), nullable=True),
    sa.Column('token_endpoint_auth_method', sa.String(length=32), nullable=False),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
    sa.Column('grant_types', sa.JSON(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('id_token_signed_response_alg', sa.String(length=16), nullable=False),
    sa.Column('access_token_signed_response_alg', sa.String(length=16), nullable=False),
    sa.Column('first_party', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_client')),
    sa.UniqueConstraint('client_id', name=op.f('uq_idp_client_client_id'))
    )
    op.create_table('idp_login_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_idp_login_throttle'))
    )
    op.create_table('idp_revoked_access_token',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_idp_revoked_access_token'))
    )
    op.create_table('idp_consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('client_pk', sa.Integer(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('granted_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_consent_account_id_idp_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_pk'], ['idp_client.id'], name=op.f('fk_idp_consent_client_pk_idp_client'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_consent'))
    )
    with op.batch_alter_table('idp_consent', schema=None) as batch_op:
        batch_op.create_index('uq_idp_consent_account_client', ['account_id', 'client_pk'], unique=True)

    op.create_table('idp_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('id_digest', sa.String(length=64), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('auth_time', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_session_account_id_idp_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_session')),
    sa.UniqueConstraint('id_digest', name=op.f('uq_idp_session_id_digest')),
    sa.UniqueConstraint('sid', name=op.f('uq_idp_session_sid'))
    )
    with op.batch_alter_table('idp_session', schema=None) as batch_op:
        batch_op.create_index('ix_idp_session_account_id', ['account_id'], unique=False)

    op.create_table('idp_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.String(length=43), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('client_pk', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('auth_time', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_grant_account_id_idp_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_pk'], ['idp_client.id'], name=op.f('fk_idp_grant_client_pk_idp_client'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['idp_session.id'], name=op.f('fk_idp_grant_session_id_idp_session'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_grant')),
    sa.UniqueConstraint('grant_id', name=op.f('uq_idp_grant_grant_id'))
    )
    with op.batch_alter_table('idp_grant', schema=None) as batch_op:
        batch_op.create_index('ix_idp_grant_account_id', ['account_id'], unique=False)
        batch_op.create_index('ix_idp_grant_session_id', ['session_id'], unique=False)

    op.create_table('idp_interaction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handle_digest', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('authenticated_session_id', sa.Integer(), nullable=True),
    sa.Column('consented_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['authenticated_session_id'], ['idp_session.id'], name=op.f('fk_idp_interaction_authenticated_session_id_idp_session'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_interaction')),
    sa.UniqueConstraint('handle_digest', name=op.f('uq_idp_interaction_handle_digest'))
    )
    op.create_table('idp_authorization_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('grant_pk', sa.Integer(), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('nonce', sa.Text(), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('code_challenge_method', sa.String(length=8), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['grant_pk'], ['idp_grant.id'], name=op.f('fk_idp_authorization_code_grant_pk_idp_grant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_authorization_code')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_idp_authorization_code_code_digest'))
    )
    op.create_table('idp_refresh_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('grant_pk', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['grant_pk'], ['idp_grant.id'], name=op.f('fk_idp_refresh_token_grant_pk_idp_grant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_refresh_token')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_idp_refresh_token_token_digest'))
    )
    with op.batch_alter_table('idp_refresh_token', schema=None) as batch_op:
        batch_op.create_index('ix_idp_refresh_token_grant_pk', ['grant_pk'], unique=False)

    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('idp_refresh_token', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_refresh_token_grant_pk')

    op.drop_table('idp_refresh_token')
    op.drop_table('idp_authorization_code')
    op.drop_table('idp_interaction')
    with op.batch_alter_table('idp_grant', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_grant_session_id')
        batch_op.drop_index('ix_idp_grant_account_id')

    op.drop_table('idp_grant')
    with op.batch_alter_table('idp_session', schema=None) as batch_op:
        batch_op.drop_index('ix_idp_session_account_id')

    op.drop_table('idp_session')
    with op.batch_alter_table('idp_consent', schema=None) as batch_op:
        batch_op.drop_index('uq_idp_consent_account_client')

    op.drop_table('idp_consent')
    op.drop_table('idp_revoked_access_token')
    op.drop_table('idp_login_throttle')
    op.drop_table('idp_client')
    op.drop_table('idp_account')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
    op.drop_table('audit_chain_head')
    # ### end Alembic commands ###
