"""CRLs owed while a CA's signing key is unavailable (issue 18)

Revision ID: 0028
Revises: 0026
Create Date: 2026-12-07 16:30:00

A revocation is recorded and audited even when the CA key (an HSM token) is absent; its CRL is
signed when the key is back. ``crl_pending_since`` is when the oldest owed change happened.
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0028"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "ca_authority",
        sa.Column("crl_pending_since", core.db.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("ca_authority") as batch:
        batch.drop_column("crl_pending_since")
