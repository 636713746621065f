"""Surges: ticket vectors, similar groups, surges, problem incidents, known issues

Revision ID: surges_0001
Revises: api_0001
Create Date: 2026-12-06 02:04:45.376171
"""

import sqlalchemy as sa
from alembic import op


revision = 'surges_0001'
down_revision = 'api_0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('similar_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vector_sum', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.Column('last_at', sa.DateTime(), nullable=False),
    sa.Column('quiet_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_similar_groups'))
    )
    with op.batch_alter_table('similar_groups', schema=None) as batch_op:
        batch_op.create_index('ix_similar_groups_last', ['last_at'], unique=False)

    op.create_table('known_issues',
    sa.Column('problem_id', sa.Integer(), nullable=False),
    sa.Column('public_text', sa.String(length=300), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=True),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['problem_id'], ['tickets.id'], name=op.f('fk_known_issues_problem_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('problem_id', name=op.f('pk_known_issues'))
    )
    op.create_table('problem_followers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('problem_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['problem_id'], ['tickets.id'], name=op.f('fk_problem_followers_problem_id_tickets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_problem_followers_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problem_followers')),
    sa.UniqueConstraint('problem_id', 'email', name=op.f('uq_problem_followers_problem_id'))
    )
    with op.batch_alter_table('problem_followers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_problem_followers_problem_id'), ['problem_id'], unique=False)

    op.create_table('problem_incidents',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('problem_id', sa.Integer(), nullable=False),
    sa.Column('solve_with_problem', sa.Boolean(), nullable=False),
    sa.Column('linked_by_id', sa.Integer(), nullable=True),
    sa.Column('linked_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['tickets.id'], name=op.f('fk_problem_incidents_incident_id_tickets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['linked_by_id'], ['users.id'], name=op.f('fk_problem_incidents_linked_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['problem_id'], ['tickets.id'], name=op.f('fk_problem_incidents_problem_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_problem_incidents'))
    )
    with op.batch_alter_table('problem_incidents', schema=None) as batch_op:
        batch_op.create_index('ix_problem_incidents_problem', ['problem_id', 'incident_id'], unique=False)

    op.create_table('surges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('open_group_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('sensitivity', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('words', sa.String(length=200), nullable=False),
    sa.Column('center', sa.LargeBinary(), nullable=False),
    sa.Column('window_minutes', sa.Integer(), nullable=False),
    sa.Column('count_at_alert', sa.Integer(), nullable=False),
    sa.Column('expected', sa.Float(), nullable=False),
    sa.Column('p_value', sa.Float(), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('sparkline', sa.String(length=200), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.Column('last_at', sa.DateTime(), nullable=False),
    sa.Column('detected_at', sa.DateTime(), nullable=False),
    sa.Column('acted_at', sa.DateTime(), nullable=True),
    sa.Column('problem_id', sa.Integer(), nullable=True),
    sa.Column('notified_group_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['similar_groups.id'], name=op.f('fk_surges_group_id_similar_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['notified_group_id'], ['groups.id'], name=op.f('fk_surges_notified_group_id_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['problem_id'], ['tickets.id'], name=op.f('fk_surges_problem_id_tickets'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_surges')),
    sa.UniqueConstraint('open_group_id', name=op.f('uq_surges_open_group_id'))
    )
    with op.batch_alter_table('surges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_surges_group_id'), ['group_id'], unique=False)
        batch_op.create_index('ix_surges_status_detected', ['status', 'detected_at'], unique=False)

    op.create_table('ticket_vectors',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=60), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=False),
    sa.Column('ticket_created_at', sa.DateTime(), nullable=False),
    sa.Column('embedded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['similar_groups.id'], name=op.f('fk_ticket_vectors_group_id_similar_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_vectors_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_vectors'))
    )
    with op.batch_alter_table('ticket_vectors', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_vectors_created_group', ['ticket_created_at', 'group_id'], unique=False)
        batch_op.create_index('ix_ticket_vectors_group_created', ['group_id', 'ticket_created_at'], unique=False)

    op.create_table('surge_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('surge_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['surge_id'], ['surges.id'], name=op.f('fk_surge_feedback_surge_id_surges'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_surge_feedback_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_surge_feedback'))
    )
    with op.batch_alter_table('surge_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_surge_feedback_surge_id'), ['surge_id'], unique=False)

    op.create_table('surge_members',
    sa.Column('surge_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['surge_id'], ['surges.id'], name=op.f('fk_surge_members_surge_id_surges'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_surge_members_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('surge_id', 'ticket_id', name=op.f('pk_surge_members'))
    )
    with op.batch_alter_table('surge_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_surge_members_ticket_id'), ['ticket_id'], unique=False)



def downgrade():
    with op.batch_alter_table('surge_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_surge_members_ticket_id'))

    op.drop_table('surge_members')
    with op.batch_alter_table('surge_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_surge_feedback_surge_id'))

    op.drop_table('surge_feedback')
    with op.batch_alter_table('ticket_vectors', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_vectors_group_created')
        batch_op.drop_index('ix_ticket_vectors_created_group')

    op.drop_table('ticket_vectors')
    with op.batch_alter_table('surges', schema=None) as batch_op:
        batch_op.drop_index('ix_surges_status_detected')
        batch_op.drop_index(batch_op.f('ix_surges_group_id'))

    op.drop_table('surges')
    with op.batch_alter_table('problem_incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_problem_incidents_problem')

    op.drop_table('problem_incidents')
    with op.batch_alter_table('problem_followers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_problem_followers_problem_id'))

    op.drop_table('problem_followers')
    op.drop_table('known_issues')
    with op.batch_alter_table('similar_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_similar_groups_last')

    op.drop_table('similar_groups')
