"""Passkeys (WebAuthn): officials' credentials, ceremony challenges, an app's minimum
authentication level and a unit's phishing-resistant requirement (issue 16)

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-10 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from idp import token_state_triggers

import core.db

revision = "0024"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_passkey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("clone_suspected_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["idp_account.id"],
            name=op.f("fk_idp_passkey_account_id_idp_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_passkey")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_idp_passkey_credential_id")),
    )
    op.create_index("ix_idp_passkey_account_id", "idp_passkey", ["account_id"], unique=False)
    op.create_table(
        "idp_webauthn_challenge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("challenge", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("user_verification", sa.String(length=16), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["idp_account.id"],
            name=op.f("fk_idp_webauthn_challenge_account_id_idp_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["idp_interaction.id"],
            name=op.f("fk_idp_webauthn_challenge_interaction_id_idp_interaction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_webauthn_challenge")),
        sa.UniqueConstraint("challenge", name=op.f("uq_idp_webauthn_challenge_challenge")),
    )
    op.create_index(
        op.f("ix_idp_webauthn_challenge_expires_at"),
        "idp_webauthn_challenge",
        ["expires_at"],
        unique=False,
    )
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("minimum_acr", sa.String(length=64), nullable=True))
    with op.batch_alter_table("idp_unit", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "requires_phishing_resistant",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
    # SQLite's batch mode rebuilt both tables, dropping the token state feed's triggers.
    token_state_triggers.recreate_sqlite_triggers(op.get_bind(), {"idp_client", "idp_unit"})


def downgrade() -> None:
    with op.batch_alter_table("idp_unit", schema=None) as batch_op:
        batch_op.drop_column("requires_phishing_resistant")
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.drop_column("minimum_acr")
    token_state_triggers.recreate_sqlite_triggers(op.get_bind(), {"idp_client", "idp_unit"})
    op.drop_index(
        op.f("ix_idp_webauthn_challenge_expires_at"), table_name="idp_webauthn_challenge"
    )
    op.drop_table("idp_webauthn_challenge")
    op.drop_index("ix_idp_passkey_account_id", table_name="idp_passkey")
    op.drop_table("idp_passkey")
