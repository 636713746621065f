"""Partial indexes on the SLA due time of the unsolved tickets: the queue's default order read
from an index instead of sorting every unsolved ticket of the history.

About 12% of tickets are unsolved, so at 1,000,000 tickets the "All open" view sorted 120,000
rows for each page. The predicate names the statuses as literals (queries repeat them the same
way; see tickets.models.is_open).

Plain (non-batch) index operations: a batch alteration of `tickets` on SQLite could recreate
the table and drop its full-text triggers.

Revision ID: scale3_0001
Revises: scale_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scale3_0001"
down_revision = "scale_0001"
branch_labels = None
depends_on = None

OPEN_PREDICATE = sa.text("status IN ('new', 'open', 'pending', 'on_hold')")
INDEXES = {
    "ix_tickets_open_due": ["resolution_due_at", "id"],
    # With the report filters: the reports' "open now" per assignee, filtered or not, reads
    # this index alone (not every assigned ticket of the history).
    "ix_tickets_open_assignee_due": ["assignee_id", "resolution_due_at", "id", "priority",
                                     "group_id", "category_id"],
}


def upgrade():
    for name, columns in INDEXES.items():
        op.create_index(name, "tickets", columns, sqlite_where=OPEN_PREDICATE,
                        postgresql_where=OPEN_PREDICATE)


def downgrade():
    for name in INDEXES:
        op.drop_index(name, table_name="tickets")
