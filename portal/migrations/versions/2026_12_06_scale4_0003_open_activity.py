"""The unsolved tickets by last activity: the queue's "Updated" order read from an index.

Sorted by last activity, an unsolved view was read through the status index and every unsolved
ticket of the history sorted for each page (23 ms at 100,000 tickets, growing with the
backlog); walking this partial index backwards stops after the page (1.1 ms).

Revision ID: scale4_0003
Revises: scale4_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "scale4_0003"
down_revision = "scale4_0002"
branch_labels = None
depends_on = None

OPEN_PREDICATE = sa.text("status IN ('new', 'open', 'pending', 'on_hold')")


def upgrade():
    op.create_index("ix_tickets_open_activity", "tickets", ["last_activity_at", "id"],
                    sqlite_where=OPEN_PREDICATE, postgresql_where=OPEN_PREDICATE)


def downgrade():
    op.drop_index("ix_tickets_open_activity", table_name="tickets")
