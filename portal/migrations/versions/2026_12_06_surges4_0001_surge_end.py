"""Surges end when their rate is back at baseline; one spike's neighbourhoods join one surge;
the scan reads only newly embedded vectors

Revision ID: surges4_0001
Revises: scale3_0002
Create Date: 2026-12-06 07:40:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'surges4_0001'
down_revision = 'scale3_0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('surges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extra_centers', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('surging_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('ended_at', sa.DateTime(), nullable=True))
    op.create_index('ix_ticket_vectors_embedded', 'ticket_vectors', ['embedded_at'])


def downgrade():
    op.drop_index('ix_ticket_vectors_embedded', table_name='ticket_vectors')
    with op.batch_alter_table('surges', schema=None) as batch_op:
        batch_op.drop_column('ended_at')
        batch_op.drop_column('surging_at')
        batch_op.drop_column('extra_centers')
