"""The version of the packaged unit list last loaded: units are loaded on the first start and
refreshed when the vietnam-provinces package changes

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idp_unit_source",
        sa.Column("package", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("package", name=op.f("pk_idp_unit_source")),
    )


def downgrade() -> None:
    op.drop_table("idp_unit_source")
