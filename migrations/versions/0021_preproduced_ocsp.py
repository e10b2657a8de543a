"""Pre-produced OCSP responses, one signed answer per certificate (issue 15)

Revision ID: 0021
Revises: 0017
Create Date: 2026-12-08 10:00:00

Empty after the upgrade: the maintenance worker produces the answers of the certificates that
are still valid in its first passes; until then the responder signs them live, as before.
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0021"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ca_ocsp_response",
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("this_update", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_update", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_ca_ocsp_response")),
    )
    op.create_index(
        op.f("ix_ca_ocsp_response_next_update"), "ca_ocsp_response", ["next_update"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ca_ocsp_response_next_update"), table_name="ca_ocsp_response")
    op.drop_table("ca_ocsp_response")
