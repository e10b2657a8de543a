"""Throttles per (account, address), per account and per device instead of a lock from every
address, readable for the admin page; self-service password reset links (issue 16)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import core.db


revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Counters are short-lived; those of the old keys mean nothing to the new ones.
    op.execute("DELETE FROM idp_login_throttle")
    with op.batch_alter_table("idp_login_throttle") as batch:
        # The table is empty: the default only lets SQLite add a NOT NULL column.
        batch.add_column(sa.Column("kind", sa.String(length=24), nullable=False, server_default=""))
        batch.alter_column("kind", server_default=None)
        batch.add_column(sa.Column("account_name", sa.String(length=150), nullable=True))
        batch.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("last_failure_at", core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index(batch.f("ix_idp_login_throttle_kind"), ["kind"], unique=False)
        batch.create_index(
            batch.f("ix_idp_login_throttle_account_name"), ["account_name"], unique=False
        )
    op.create_table(
        "idp_password_reset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["idp_account.id"],
            name=op.f("fk_idp_password_reset_account_id_idp_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_password_reset")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_idp_password_reset_token_digest")),
    )
    op.create_index(
        op.f("ix_idp_password_reset_account_id"), "idp_password_reset", ["account_id"]
    )
    op.create_index(op.f("ix_idp_account_email"), "idp_account", ["email"])


def downgrade() -> None:
    op.drop_index(op.f("ix_idp_account_email"), table_name="idp_account")
    op.drop_index(op.f("ix_idp_password_reset_account_id"), table_name="idp_password_reset")
    op.drop_table("idp_password_reset")
    with op.batch_alter_table("idp_login_throttle") as batch:
        batch.drop_index(batch.f("ix_idp_login_throttle_account_name"))
        batch.drop_index(batch.f("ix_idp_login_throttle_kind"))
        batch.drop_column("last_failure_at")
        batch.drop_column("client_address")
        batch.drop_column("account_name")
        batch.drop_column("kind")
