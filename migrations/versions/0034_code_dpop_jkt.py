"""Authorization codes bound to a DPoP key: dpop_jkt at the authorization endpoint (RFC 9449
§10); a minimum sign-in level for CAS services and SAML SPs, as OIDC clients have (issue 16)

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 19:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

LEVELLED_TABLES = ("idp_cas_service", "idp_saml_sp")


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, also on SQLite (see 0030: a batch copy would drop the
    # token state triggers).
    op.add_column(
        "idp_authorization_code", sa.Column("dpop_jkt", sa.String(length=64), nullable=True)
    )
    for table in LEVELLED_TABLES:
        op.add_column(table, sa.Column("minimum_acr", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in reversed(LEVELLED_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("minimum_acr")
    with op.batch_alter_table("idp_authorization_code", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
