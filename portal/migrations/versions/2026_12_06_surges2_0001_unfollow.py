"""Surges: followers of a known issue can unfollow (kept as a deflection)

Revision ID: surges2_0001
Revises: pgsearch_0001
Create Date: 2026-12-06 05:10:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'surges2_0001'
down_revision = 'pgsearch_0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('problem_followers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unfollowed_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('problem_followers', schema=None) as batch_op:
        batch_op.drop_column('unfollowed_at')
