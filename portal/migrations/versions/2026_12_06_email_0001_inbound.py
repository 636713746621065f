"""Inbound mail: raw messages with status and reason; addresses bouncing per ticket

Revision ID: email_0001
Revises: security_0001
Create Date: 2026-12-06 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'email_0001'
down_revision = 'security_0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=400), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('ticket_message_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('processed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_inbound_messages_ticket_id_tickets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_message_id'], ['messages.id'], name=op.f('fk_inbound_messages_ticket_message_id_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_inbound_messages_fingerprint'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_messages_status_received', ['status', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_messages_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_messages_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_messages_ticket_message_id'), ['ticket_message_id'], unique=False)

    op.create_table('ticket_bounces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_bounces_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_bounces')),
    sa.UniqueConstraint('ticket_id', 'email', name=op.f('uq_ticket_bounces_ticket_id'))
    )


def downgrade():
    op.drop_table('ticket_bounces')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_ticket_message_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_messages_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_messages_message_id'))
        batch_op.drop_index('ix_inbound_messages_status_received')
    op.drop_table('inbound_messages')
