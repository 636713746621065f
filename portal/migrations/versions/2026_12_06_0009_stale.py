"""Stale-ticket alerts: tickets.stale_at

Revision ID: 0009_stale
Revises: 0008_jobs
Create Date: 2026-12-06 01:58:28.551695
"""

import sqlalchemy as sa
from alembic import op


revision = '0009_stale'
down_revision = '0008_jobs'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stale_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_stale_at'), ['stale_at'], unique=False)



def downgrade():
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_stale_at'))
        batch_op.drop_column('stale_at')

