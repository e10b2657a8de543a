"""Mutual TLS (RFC 8705): the subject alternative name a tls_client_auth client registers
instead of a subject DN (§2.1.2), and a public client's grant bound to its certificate (§3)

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 19:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

SAN_FIELDS = (
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, also on SQLite: a batch that copied the tables would drop
    # their token state triggers (idp/token_state_triggers.py).
    for field in SAN_FIELDS:
        op.add_column("idp_client", sa.Column(field, sa.Text(), nullable=True))
    op.add_column(
        "idp_grant", sa.Column("certificate_thumbprint", sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("idp_grant", schema=None) as batch_op:
        batch_op.drop_column("certificate_thumbprint")
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        for field in reversed(SAN_FIELDS):
            batch_op.drop_column(field)
