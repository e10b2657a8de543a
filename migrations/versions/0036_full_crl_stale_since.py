"""The full CRL of a partitioned CA follows revocations within a bounded delay (issue 18)

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 22:00:00

A revocation of a partitioned certificate signs the partition CRL its CRLDP names at once and
records since when the full CRL is behind; the maintenance pass signs the full CRL within
``COMMUNE_SSO_CA_FULL_CRL_MAX_DELAY`` seconds.
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "ca_authority",
        sa.Column("full_crl_stale_since", core.db.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("ca_authority") as batch:
        batch.drop_column("full_crl_stale_since")
