"""agent workspace indexes: queue sorts and tabs, report date ranges and status events

Revision ID: 0004_agent
Revises: 0001_initial
"""

from alembic import op

revision = "0004_agent"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_tickets_status_priority_due": ["status", "priority", "resolution_due_at"],
    "ix_tickets_status_first_due": ["status", "first_response_at", "first_response_due_at"],
    "ix_tickets_first_response_at": ["first_response_at"],
    "ix_tickets_csat_at": ["csat_at"],
}


EVENT_INDEXES = {
    "ix_ticket_events_kind_value_created": ["kind", "new_value", "created_at", "old_value"],
}


def upgrade():
    with op.batch_alter_table("tickets") as batch:
        for name, columns in INDEXES.items():
            batch.create_index(name, columns)
    with op.batch_alter_table("ticket_events") as batch:
        for name, columns in EVENT_INDEXES.items():
            batch.create_index(name, columns)


def downgrade():
    with op.batch_alter_table("ticket_events") as batch:
        for name in EVENT_INDEXES:
            batch.drop_index(name)
    with op.batch_alter_table("tickets") as batch:
        for name in INDEXES:
            batch.drop_index(name)
