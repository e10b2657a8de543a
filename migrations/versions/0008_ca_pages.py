"""CA pages: expiry reminders sent per certificate and threshold

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 19:00:00
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ca_reminder_sent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('threshold_days', sa.Integer(), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['ca_certificate.id'], name=op.f('fk_ca_reminder_sent_certificate_id_ca_certificate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_reminder_sent')),
    sa.UniqueConstraint('certificate_id', 'threshold_days', name='uq_ca_reminder_sent_threshold')
    )


def downgrade() -> None:
    op.drop_table('ca_reminder_sent')
