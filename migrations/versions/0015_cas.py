"""CAS 3.0: registered services, service tickets, CAS single-logout notices in the delivery
log (issue 17)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_cas_service",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("match_kind", sa.String(length=8), nullable=False),
        sa.Column("url_pattern", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("single_logout", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_cas_service")),
        sa.UniqueConstraint("service_id", name=op.f("uq_idp_cas_service_service_id")),
    )
    op.create_table(
        "idp_cas_ticket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_digest", sa.String(length=64), nullable=False),
        sa.Column("service_pk", sa.Integer(), nullable=False),
        sa.Column("service_url", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("from_new_login", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("session_index", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_pk"],
            ["idp_cas_service.id"],
            name=op.f("fk_idp_cas_ticket_service_pk_idp_cas_service"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["idp_session.id"],
            name=op.f("fk_idp_cas_ticket_session_id_idp_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idp_cas_ticket")),
        sa.UniqueConstraint("ticket_digest", name=op.f("uq_idp_cas_ticket_ticket_digest")),
    )
    with op.batch_alter_table("idp_cas_ticket", schema=None) as batch_op:
        batch_op.create_index("ix_idp_cas_ticket_session_id", ["session_id"], unique=False)

    # Server default: every notice queued before this revision is an OIDC logout token.
    with op.batch_alter_table("idp_logout_delivery", schema=None) as batch_op:
        batch_op.alter_column("client_pk", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("protocol", sa.String(length=16), server_default="oidc", nullable=False)
        )
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM idp_logout_delivery WHERE client_pk IS NULL")
    with op.batch_alter_table("idp_logout_delivery", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("protocol")
        batch_op.alter_column("client_pk", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("idp_cas_ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_idp_cas_ticket_session_id")
    op.drop_table("idp_cas_ticket")
    op.drop_table("idp_cas_service")
