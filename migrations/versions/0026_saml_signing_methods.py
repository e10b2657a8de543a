"""SAML service providers: the signing methods their metadata declares (SAML V2.0 Metadata
Profile for Algorithm Support), so that an SP declaring ECDSA only gets ECDSA signatures

Revision ID: 0026
Revises: 0024
Create Date: 2026-12-07 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idp_saml_sp", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing_methods", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idp_saml_sp", schema=None) as batch_op:
        batch_op.drop_column("signing_methods")
