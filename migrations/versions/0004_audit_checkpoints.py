"""Signed audit checkpoints (issue 4)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 17:20:00
"""

from alembic import op
import sqlalchemy as sa

import core.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoint',
    sa.Column('number', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.Column('at', core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('key_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('prev_digest', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_audit_checkpoint'))
    )


def downgrade() -> None:
    op.drop_table('audit_checkpoint')
