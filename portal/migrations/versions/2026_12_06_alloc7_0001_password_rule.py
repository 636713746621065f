"""users.password_rule: the version of the password rule the password was judged to meet

Revision ID: alloc7_0001
Revises: scale6_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "alloc7_0001"
down_revision = "scale6_0001"
branch_labels = None
depends_on = None


def upgrade():
    # NULL for every existing password: each is judged once more, at its next sign-in.
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("password_rule", sa.SmallInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("password_rule")
