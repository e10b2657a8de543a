"""Certificate authority: CAs, profiles, requests, approvals, certificates, CRLs (issue 4)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 17:20:00
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ca_authority',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('key_uri', sa.String(length=500), nullable=False),
    sa.Column('key_algorithm', sa.String(length=16), nullable=False),
    sa.Column('signature_scheme', sa.String(length=16), nullable=False),
    sa.Column('certificate_der', sa.LargeBinary(), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('not_before', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_after', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('ocsp_key_uri', sa.String(length=500), nullable=True),
    sa.Column('ocsp_certificate_der', sa.LargeBinary(), nullable=True),
    sa.Column('crl_number', sa.Integer(), nullable=False),
    sa.Column('created_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['ca_authority.id'], name=op.f('fk_ca_authority_parent_id_ca_authority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_authority')),
    sa.UniqueConstraint('name', name=op.f('uq_ca_authority_name'))
    )
    op.create_table('ca_lifecycle_cursor',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_ca_lifecycle_cursor'))
    )
    op.create_table('ca_certificate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('authority_id', sa.Integer(), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('subject_ref', sa.String(length=64), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('common_name', sa.String(length=200), nullable=False),
    sa.Column('search_name', sa.String(length=200), nullable=False),
    sa.Column('citizen_id', sa.String(length=12), nullable=True),
    sa.Column('unit_code', sa.String(length=8), nullable=True),
    sa.Column('spki_sha256', sa.String(length=64), nullable=False),
    sa.Column('not_before', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_after', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('revoked_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('invalidity_date', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('renewal_of_id', sa.Integer(), nullable=True),
    sa.Column('issued_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['authority_id'], ['ca_authority.id'], name=op.f('fk_ca_certificate_authority_id_ca_authority')),
    sa.ForeignKeyConstraint(['renewal_of_id'], ['ca_certificate.id'], name=op.f('fk_ca_certificate_renewal_of_id_ca_certificate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_certificate')),
    sa.UniqueConstraint('serial', name=op.f('uq_ca_certificate_serial'))
    )
    with op.batch_alter_table('ca_certificate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ca_certificate_citizen_id'), ['citizen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_certificate_not_after'), ['not_after'], unique=False)
        batch_op.create_index('ix_ca_certificate_revoked', ['authority_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_certificate_search_name'), ['search_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_certificate_spki_sha256'), ['spki_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_certificate_subject_ref'), ['subject_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_certificate_unit_code'), ['unit_code'], unique=False)
    op.create_table('ca_crl',
    sa.Column('authority_id', sa.Integer(), nullable=False),
    sa.Column('crl_number', sa.Integer(), nullable=False),
    sa.Column('this_update', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_update', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['authority_id'], ['ca_authority.id'], name=op.f('fk_ca_crl_authority_id_ca_authority')),
    sa.PrimaryKeyConstraint('authority_id', name=op.f('pk_ca_crl'))
    )
    op.create_table('ca_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('subject_ref', sa.String(length=64), nullable=False),
    sa.Column('unit_code', sa.String(length=8), nullable=True),
    sa.Column('identity', sa.JSON(), nullable=False),
    sa.Column('csr_der', sa.LargeBinary(), nullable=True),
    sa.Column('server_keygen', sa.Boolean(), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=False),
    sa.Column('renewal_of_id', sa.Integer(), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('requested_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('decided_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.String(length=500), nullable=True),
    sa.Column('certificate_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['ca_certificate.id'], name=op.f('fk_ca_request_certificate_id_ca_certificate')),
    sa.ForeignKeyConstraint(['renewal_of_id'], ['ca_certificate.id'], name=op.f('fk_ca_request_renewal_of_id_ca_certificate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_request')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ca_request_idempotency_key')),
    sa.UniqueConstraint('request_id', name=op.f('uq_ca_request_request_id'))
    )
    with op.batch_alter_table('ca_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ca_request_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_request_subject_ref'), ['subject_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_ca_request_unit_code'), ['unit_code'], unique=False)
    op.create_table('ca_approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('approver', sa.String(length=200), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['ca_request.id'], name=op.f('fk_ca_approval_request_id_ca_request')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_approval')),
    sa.UniqueConstraint('request_id', 'approver', name='uq_ca_approval_approver')
    )
    with op.batch_alter_table('ca_approval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ca_approval_request_id'), ['request_id'], unique=False)

    # Lifecycle holds and unit-merger jobs (ca_admin/lifecycle.py, ca_admin/unit_merger.py).
    op.create_table('ca_lifecycle_hold',
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['ca_certificate.id'], name=op.f('fk_ca_lifecycle_hold_certificate_id_ca_certificate')),
    sa.PrimaryKeyConstraint('certificate_id', name=op.f('pk_ca_lifecycle_hold'))
    )
    op.create_table('ca_merger_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('old_unit_code', sa.String(length=8), nullable=False),
    sa.Column('new_unit_code', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('requested_at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('approvers', sa.JSON(), nullable=False),
    sa.Column('approved_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('items_total', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_merger_job')),
    sa.UniqueConstraint('job_id', name=op.f('uq_ca_merger_job_job_id'))
    )
    with op.batch_alter_table('ca_merger_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ca_merger_job_old_unit_code'), ['old_unit_code'], unique=False)
    op.create_table('ca_merger_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('new_certificate_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('done_at', core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['ca_certificate.id'], name=op.f('fk_ca_merger_item_certificate_id_ca_certificate')),
    sa.ForeignKeyConstraint(['job_id'], ['ca_merger_job.id'], name=op.f('fk_ca_merger_item_job_id_ca_merger_job')),
    sa.ForeignKeyConstraint(['new_certificate_id'], ['ca_certificate.id'], name=op.f('fk_ca_merger_item_new_certificate_id_ca_certificate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_merger_item')),
    sa.UniqueConstraint('job_id', 'certificate_id', name='uq_ca_merger_item_certificate')
    )
    with op.batch_alter_table('ca_merger_item', schema=None) as batch_op:
        batch_op.create_index('ix_ca_merger_item_pending', ['job_id', 'status'], unique=False)

def downgrade() -> None:
    with op.batch_alter_table('ca_merger_item', schema=None) as batch_op:
        batch_op.drop_index('ix_ca_merger_item_pending')
    op.drop_table('ca_merger_item')
    with op.batch_alter_table('ca_merger_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ca_merger_job_old_unit_code'))
    op.drop_table('ca_merger_job')
    op.drop_table('ca_lifecycle_hold')
    with op.batch_alter_table('ca_approval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ca_approval_request_id'))
    op.drop_table('ca_approval')
    with op.batch_alter_table('ca_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ca_request_unit_code'))
        batch_op.drop_index(batch_op.f('ix_ca_request_subject_ref'))
        batch_op.drop_index(batch_op.f('ix_ca_request_status'))
    op.drop_table('ca_request')
    op.drop_table('ca_crl')
    with op.batch_alter_table('ca_certificate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ca_certificate_unit_code'))
        batch_op.drop_index(batch_op.f('ix_ca_certificate_subject_ref'))
        batch_op.drop_index(batch_op.f('ix_ca_certificate_spki_sha256'))
        batch_op.drop_index(batch_op.f('ix_ca_certificate_search_name'))
        batch_op.drop_index('ix_ca_certificate_revoked')
        batch_op.drop_index(batch_op.f('ix_ca_certificate_not_after'))
        batch_op.drop_index(batch_op.f('ix_ca_certificate_citizen_id'))
    op.drop_table('ca_certificate')
    op.drop_table('ca_lifecycle_cursor')
    op.drop_table('ca_authority')
