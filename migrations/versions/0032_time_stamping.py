"""RFC 3161 time-stamping authority: TSA units (key and certificate) and the tokens they
signed (issue 18)

Revision ID: 0032
Revises: 0030
Create Date: 2026-12-07 19:10:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0032"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ca_tsa_unit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("authority_id", sa.Integer(), nullable=False),
        sa.Column("key_uri", sa.String(length=500), nullable=False),
        sa.Column("key_algorithm", sa.String(length=16), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("not_after", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["ca_authority.id"],
            name=op.f("fk_ca_tsa_unit_authority_id_ca_authority"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_tsa_unit")),
        sa.UniqueConstraint("name", name=op.f("uq_ca_tsa_unit_name")),
    )
    op.create_table(
        "ca_tsa_token",
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("gen_time", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("hash_algorithm", sa.String(length=16), nullable=False),
        sa.Column("message_imprint", sa.String(length=128), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["ca_tsa_unit.id"], name=op.f("fk_ca_tsa_token_unit_id_ca_tsa_unit")
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_ca_tsa_token")),
    )
    op.create_index(
        op.f("ix_ca_tsa_token_gen_time"), "ca_tsa_token", ["gen_time"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ca_tsa_token_gen_time"), table_name="ca_tsa_token")
    op.drop_table("ca_tsa_token")
    op.drop_table("ca_tsa_unit")
