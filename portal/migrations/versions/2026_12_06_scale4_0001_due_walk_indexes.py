"""The queue's SLA-due order read from an index for every view, filtered or not.

- ix_tickets_open_due (the unsolved tickets in due order) also carries every queue filter
  and the columns of the "Due soon" view: a filtered unsolved view (`?priority=urgent&group=2`)
  walks it in order and checks each ticket inside the index, reading table rows only for the
  tickets it keeps. Before, SQLite read every open ticket of the group (25,000 table rows at
  1,000,000 tickets) and sorted them.
- ix_tickets_due (all tickets in due order): "All tickets" with a common tag or word walks it
  and checks each ticket against the list of matches, instead of reading and sorting every
  match (27,000 table rows for "invoice timeout").

Plain (non-batch) index operations: a batch alteration of `tickets` on SQLite could recreate
the table and drop its full-text triggers.

Revision ID: scale4_0001
Revises: surges4_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scale4_0001"
down_revision = "surges4_0001"
branch_labels = None
depends_on = None

OPEN_PREDICATE = sa.text("status IN ('new', 'open', 'pending', 'on_hold')")
OPEN_DUE_BEFORE = ["resolution_due_at", "id"]
OPEN_DUE_AFTER = ["resolution_due_at", "id", "status", "priority", "group_id", "category_id",
                  "assignee_id", "type", "first_response_at", "first_response_due_at"]


def _open_due(columns):
    op.create_index("ix_tickets_open_due", "tickets", columns, sqlite_where=OPEN_PREDICATE,
                    postgresql_where=OPEN_PREDICATE)


def upgrade():
    op.drop_index("ix_tickets_open_due", table_name="tickets")
    _open_due(OPEN_DUE_AFTER)
    op.create_index("ix_tickets_due", "tickets", ["resolution_due_at", "id"])


def downgrade():
    op.drop_index("ix_tickets_due", table_name="tickets")
    op.drop_index("ix_tickets_open_due", table_name="tickets")
    _open_due(OPEN_DUE_BEFORE)
