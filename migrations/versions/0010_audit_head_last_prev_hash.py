"""audit chain head keeps the last entry's prev_hash (one-statement append on PostgreSQL)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

GENESIS_HASH = '0' * 64


def upgrade() -> None:
    with op.batch_alter_table('audit_chain_head', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'last_prev_hash',
                sa.String(length=64),
                nullable=False,
                server_default=GENESIS_HASH,
            )
        )
    # The value the chain already implies: the prev_hash of the entry the head points at.
    op.execute(
        """
        UPDATE audit_chain_head
        SET last_prev_hash = COALESCE(
            (SELECT prev_hash FROM audit_log WHERE audit_log.seq = audit_chain_head.last_seq),
            last_prev_hash
        )
        """
    )
    # The service always writes it; no default left to hide a writer that forgets.
    with op.batch_alter_table('audit_chain_head', schema=None) as batch_op:
        batch_op.alter_column('last_prev_hash', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('audit_chain_head', schema=None) as batch_op:
        batch_op.drop_column('last_prev_hash')
