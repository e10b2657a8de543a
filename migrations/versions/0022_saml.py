"""SAML 2.0 IdP: registered service providers, the request-ID replay cache, persistent
NameIDs, and the service providers of each browser session for single logout (issue 17)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 12:40:00
"""

import sqlalchemy as sa
from alembic import op

import core.db


revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_saml_sp",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("assertion_consumer_services", sa.JSON(), nullable=False),
        sa.Column("single_logout_services", sa.JSON(), nullable=False),
        sa.Column("signing_certificates", sa.JSON(), nullable=False),
        sa.Column("encryption_certificates", sa.JSON(), nullable=False),
        sa.Column("authn_requests_signed", sa.Boolean(), nullable=False),
        sa.Column("want_assertions_signed", sa.Boolean(), nullable=False),
        sa.Column("name_id_format", sa.String(length=128), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("encrypt_assertions", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_saml_sp")),
        sa.UniqueConstraint("entity_id", name=op.f("uq_idp_saml_sp_entity_id")),
    )
    op.create_table(
        "idp_saml_persistent_id",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sp_pk", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["idp_account.id"],
            name=op.f("fk_idp_saml_persistent_id_account_id_idp_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sp_pk"],
            ["idp_saml_sp.id"],
            name=op.f("fk_idp_saml_persistent_id_sp_pk_idp_saml_sp"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_saml_persistent_id")),
        sa.UniqueConstraint("account_id", "sp_pk", name="uq_idp_saml_persistent_id_account_sp"),
        sa.UniqueConstraint("sp_pk", "value", name="uq_idp_saml_persistent_id_sp_pk_value"),
    )
    op.create_table(
        "idp_saml_request_id",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sp_pk", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sp_pk"],
            ["idp_saml_sp.id"],
            name=op.f("fk_idp_saml_request_id_sp_pk_idp_saml_sp"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_saml_request_id")),
        sa.UniqueConstraint("sp_pk", "request_id", name="uq_idp_saml_request_id_sp_pk_request_id"),
    )
    with op.batch_alter_table("idp_saml_request_id", schema=None) as batch_op:
        batch_op.create_index("ix_idp_saml_request_id_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "idp_saml_session_participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("sp_pk", sa.Integer(), nullable=False),
        sa.Column("name_id", sa.String(length=256), nullable=False),
        sa.Column("name_id_format", sa.String(length=128), nullable=False),
        sa.Column("session_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["idp_session.id"],
            name=op.f("fk_idp_saml_session_participant_session_id_idp_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sp_pk"],
            ["idp_saml_sp.id"],
            name=op.f("fk_idp_saml_session_participant_sp_pk_idp_saml_sp"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_saml_session_participant")),
    )
    with op.batch_alter_table("idp_saml_session_participant", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idp_saml_session_participant_session_id", ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_saml_session_participant", schema=None) as batch_op:
        batch_op.drop_index("ix_idp_saml_session_participant_session_id")

    op.drop_table("idp_saml_session_participant")
    with op.batch_alter_table("idp_saml_request_id", schema=None) as batch_op:
        batch_op.drop_index("ix_idp_saml_request_id_expires_at")

    op.drop_table("idp_saml_request_id")
    op.drop_table("idp_saml_persistent_id")
    op.drop_table("idp_saml_sp")
