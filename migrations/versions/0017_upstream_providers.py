"""Upstream OpenID providers (identity brokering) and the sessions that began there (issue 17)

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_upstream_provider",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upstream_id", sa.String(length=48), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("name_vi", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=False),
        sa.Column("sealed_client_secret", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("link_claim", sa.String(length=32), nullable=False),
        sa.Column("authorization_endpoint", sa.Text(), nullable=False),
        sa.Column("token_endpoint", sa.Text(), nullable=False),
        sa.Column("jwks_uri", sa.Text(), nullable=False),
        sa.Column("end_session_endpoint", sa.Text(), nullable=True),
        sa.Column("id_token_algs", sa.JSON(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_upstream_provider")),
        sa.UniqueConstraint("upstream_id", name=op.f("uq_idp_upstream_provider_upstream_id")),
    )
    op.create_table(
        "idp_upstream_session",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("upstream_pk", sa.Integer(), nullable=False),
        sa.Column("upstream_subject", sa.String(length=255), nullable=False),
        sa.Column("sealed_id_token", sa.Text(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["idp_session.id"],
            name=op.f("fk_idp_upstream_session_session_id_idp_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["upstream_pk"],
            ["idp_upstream_provider.id"],
            name=op.f("fk_idp_upstream_session_upstream_pk_idp_upstream_provider"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_idp_upstream_session")),
    )
    with op.batch_alter_table("idp_upstream_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idp_upstream_session_upstream_pk"), ["upstream_pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_upstream_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idp_upstream_session_upstream_pk"))
    op.drop_table("idp_upstream_session")
    op.drop_table("idp_upstream_provider")
