"""Client secret rotation with an overlap: the previous secret's digest and until when it is
still accepted (a rolling deploy of the app can take its time to pick up the new secret)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import core.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "previous_secret_valid_until", core.db.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("idp_client", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_valid_until")
        batch_op.drop_column("previous_secret_digest")
