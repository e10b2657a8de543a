"""Administrative units, agencies, officials' profiles, delegated admin roles, groups,
activation codes, lifecycle events and import jobs (issue 3)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 15:20:28.969247
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idp_import_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=43), nullable=False),
    sa.Column('file_name', sa.String(length=300), nullable=False),
    sa.Column('file_digest', sa.String(length=64), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_import_job')),
    sa.UniqueConstraint('job_id', name=op.f('uq_idp_import_job_job_id'))
    )
    with op.batch_alter_table('idp_import_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_import_job_file_digest'), ['file_digest'], unique=False)

    op.create_table('idp_lifecycle_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('account_subject', sa.String(length=64), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_lifecycle_event'))
    )
    with op.batch_alter_table('idp_lifecycle_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_lifecycle_event_account_subject'), ['account_subject'], unique=False)

    op.create_table('idp_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('division_type', sa.String(length=40), nullable=False),
    sa.Column('province_code', sa.String(length=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merged_into_id'], ['idp_unit.id'], name=op.f('fk_idp_unit_merged_into_id_idp_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_unit')),
    sa.UniqueConstraint('code', name=op.f('uq_idp_unit_code'))
    )
    with op.batch_alter_table('idp_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_unit_province_code'), ['province_code'], unique=False)

    op.create_table('idp_account_move',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('from_unit_id', sa.Integer(), nullable=True),
    sa.Column('to_unit_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_account_move_account_id_idp_account')),
    sa.ForeignKeyConstraint(['from_unit_id'], ['idp_unit.id'], name=op.f('fk_idp_account_move_from_unit_id_idp_unit')),
    sa.ForeignKeyConstraint(['to_unit_id'], ['idp_unit.id'], name=op.f('fk_idp_account_move_to_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_account_move'))
    )
    with op.batch_alter_table('idp_account_move', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_account_move_account_id'), ['account_id'], unique=False)

    op.create_table('idp_activation_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_activation_code_account_id_idp_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_activation_code')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_idp_activation_code_code_digest'))
    )
    op.create_table('idp_admin_role',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('granted_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_admin_role_account_id_idp_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['idp_unit.id'], name=op.f('fk_idp_admin_role_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_admin_role'))
    )
    with op.batch_alter_table('idp_admin_role', schema=None) as batch_op:
        batch_op.create_index('uq_idp_admin_role_account_role_unit', ['account_id', 'role', 'unit_id'], unique=True)

    op.create_table('idp_agency',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['idp_unit.id'], name=op.f('fk_idp_agency_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_agency'))
    )
    with op.batch_alter_table('idp_agency', schema=None) as batch_op:
        batch_op.create_index('uq_idp_agency_unit_kind_name', ['unit_id', 'kind', 'name'], unique=True)

    op.create_table('idp_client_unit_scope',
    sa.Column('client_pk', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['client_pk'], ['idp_client.id'], name=op.f('fk_idp_client_unit_scope_client_pk_idp_client'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['idp_unit.id'], name=op.f('fk_idp_client_unit_scope_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('client_pk', 'unit_id', name=op.f('pk_idp_client_unit_scope'))
    )
    op.create_table('idp_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scim_id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deleted_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['unit_id'], ['idp_unit.id'], name=op.f('fk_idp_group_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_group')),
    sa.UniqueConstraint('scim_id', name=op.f('uq_idp_group_scim_id'))
    )
    op.create_table('idp_unit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['idp_unit.id'], name=op.f('fk_idp_unit_event_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idp_unit_event'))
    )
    with op.batch_alter_table('idp_unit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_unit_event_unit_id'), ['unit_id'], unique=False)

    op.create_table('idp_account_profile',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('citizen_id', sa.String(length=12), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.String(length=200), nullable=True),
    sa.Column('search_name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('deleted_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_account_profile_account_id_idp_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['agency_id'], ['idp_agency.id'], name=op.f('fk_idp_account_profile_agency_id_idp_agency')),
    sa.ForeignKeyConstraint(['unit_id'], ['idp_unit.id'], name=op.f('fk_idp_account_profile_unit_id_idp_unit')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_idp_account_profile')),
    sa.UniqueConstraint('citizen_id', name=op.f('uq_idp_account_profile_citizen_id'))
    )
    with op.batch_alter_table('idp_account_profile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idp_account_profile_search_name'), ['search_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_idp_account_profile_unit_id'), ['unit_id'], unique=False)

    op.create_table('idp_group_member',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['idp_account.id'], name=op.f('fk_idp_group_member_account_id_idp_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['idp_group.id'], name=op.f('fk_idp_group_member_group_id_idp_group'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'account_id', name=op.f('pk_idp_group_member'))
    )


def downgrade() -> None:
    op.drop_table('idp_group_member')
    with op.batch_alter_table('idp_account_profile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_account_profile_unit_id'))
        batch_op.drop_index(batch_op.f('ix_idp_account_profile_search_name'))

    op.drop_table('idp_account_profile')
    with op.batch_alter_table('idp_unit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_unit_event_unit_id'))

    op.drop_table('idp_unit_event')
    op.drop_table('idp_group')
    op.drop_table('idp_client_unit_scope')
    with op.batch_alter_table('idp_agency', schema=None) as batch_op:
        batch_op.drop_index('uq_idp_agency_unit_kind_name')

    op.drop_table('idp_agency')
    with op.batch_alter_table('idp_admin_role', schema=None) as batch_op:
        batch_op.drop_index('uq_idp_admin_role_account_role_unit')

    op.drop_table('idp_admin_role')
    op.drop_table('idp_activation_code')
    with op.batch_alter_table('idp_account_move', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_account_move_account_id'))

    op.drop_table('idp_account_move')
    with op.batch_alter_table('idp_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_unit_province_code'))

    op.drop_table('idp_unit')
    with op.batch_alter_table('idp_lifecycle_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_lifecycle_event_account_subject'))

    op.drop_table('idp_lifecycle_event')
    with op.batch_alter_table('idp_import_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idp_import_job_file_digest'))

    op.drop_table('idp_import_job')
