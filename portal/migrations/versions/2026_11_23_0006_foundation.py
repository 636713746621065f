"""staff invitations: users.invited_at

Revision ID: 0006_foundation
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_foundation"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("invited_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("invited_at")
