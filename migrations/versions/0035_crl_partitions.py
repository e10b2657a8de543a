"""Partitioned CRLs (RFC 5280 §5.2.5 issuingDistributionPoint) for national scale (issue 18)

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 19:10:00

Each certificate issued from now on names the CRL of its partition in its CRLDP; the ones issued
before keep naming the full CRL, so their ``crl_partition`` stays NULL. On PostgreSQL, a trigram
index serves the certificate search page's "name contains" at a million certificates.
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, also on SQLite: no copy of a table of a million rows.
    op.add_column("ca_certificate", sa.Column("crl_partition", sa.Integer(), nullable=True))
    op.create_index(
        "ix_ca_certificate_partition",
        "ca_certificate",
        ["authority_id", "crl_partition", "status"],
    )
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is a trusted extension (PostgreSQL ≥ 13): the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_ca_certificate_search_name_trgm",
            "ca_certificate",
            ["search_name"],
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
        )
    op.create_table(
        "ca_crl_partition",
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("crl_number", sa.Integer(), nullable=False),
        sa.Column("this_update", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_update", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("pending_since", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["authority_id"], ["ca_authority.id"]),
        sa.PrimaryKeyConstraint("authority_id", "partition"),
    )
    op.create_table(
        "ca_crl_partition_fill",
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["authority_id"], ["ca_authority.id"]),
        sa.PrimaryKeyConstraint("authority_id"),
    )


def downgrade() -> None:
    op.drop_table("ca_crl_partition_fill")
    op.drop_table("ca_crl_partition")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_ca_certificate_search_name_trgm", table_name="ca_certificate")
    op.drop_index("ix_ca_certificate_partition", table_name="ca_certificate")
    with op.batch_alter_table("ca_certificate") as batch:
        batch.drop_column("crl_partition")
