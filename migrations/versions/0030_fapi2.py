"""FAPI 2.0 parts: client keys (private_key_jwt, signed request objects), pushed authorization
requests, DPoP- and certificate-bound tokens, single-use JWT ids (issue 16)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-12 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db
from idp import token_state_triggers

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

CLIENT_FLAGS = (
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "dpop_bound_access_tokens",
    "tls_client_certificate_bound_access_tokens",
    "fapi2_profile",
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, also on SQLite: a batch that copied the tables would drop
    # their token state triggers (idp/token_state_triggers.py).
    op.add_column("idp_client", sa.Column("jwks", sa.JSON(), nullable=True))
    op.add_column("idp_client", sa.Column("jwks_uri", sa.Text(), nullable=True))
    op.add_column("idp_client", sa.Column("tls_client_auth_subject_dn", sa.Text(), nullable=True))
    for flag in CLIENT_FLAGS:
        op.add_column(
            "idp_client",
            sa.Column(flag, sa.Boolean(), server_default=sa.false(), nullable=False),
        )
    op.add_column("idp_grant", sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    op.create_table(
        "idp_used_jti",
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_digest", name=op.f("pk_idp_used_jti")),
    )
    op.create_index(
        op.f("ix_idp_used_jti_expires_at"), "idp_used_jti", ["expires_at"], unique=False
    )
    op.create_table(
        "idp_pushed_authorization_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_uri_digest", sa.String(length=64), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["idp_client.id"],
            name=op.f("fk_idp_pushed_authorization_request_client_pk_idp_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_pushed_authorization_request")),
        sa.UniqueConstraint(
            "request_uri_digest",
            name=op.f("uq_idp_pushed_authorization_request_request_uri_digest"),
        ),
    )
    op.create_index(
        op.f("ix_idp_pushed_authorization_request_expires_at"),
        "idp_pushed_authorization_request",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_idp_pushed_authorization_request_expires_at"),
        table_name="idp_pushed_authorization_request",
    )
    op.drop_table("idp_pushed_authorization_request")
    op.drop_index(op.f("ix_idp_used_jti_expires_at"), table_name="idp_used_jti")
    op.drop_table("idp_used_jti")
    with op.batch_alter_table("idp_grant", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        for flag in reversed(CLIENT_FLAGS):
            batch_op.drop_column(flag)
        batch_op.drop_column("tls_client_auth_subject_dn")
        batch_op.drop_column("jwks_uri")
        batch_op.drop_column("jwks")
