"""The tickets the SLA check may still have to act on, in an index of their own.

The check (portal.agent.jobs.check_sla, every minute in a worker, and in a queue request
while no worker runs it) looked for waiting tickets due soon that are not yet escalated or
not yet flagged as breached, through the status indexes: it read every waiting ticket due
before the horizon, almost all of them escalated and breached long ago (9,000 at 100,000
tickets, 90,000 at a million, growing with the backlog). This partial index holds only the
waiting tickets with something left to flag (not escalated, or a target not flagged as
breached): the recent ones, whatever the size of the history.

Revision ID: scale6_0001
Revises: scale5_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "scale6_0001"
down_revision = "scale5_0003"
branch_labels = None
depends_on = None

# Must stay identical to portal.tickets.models.SLA_CHECK_PREDICATE.
SQLITE_PREDICATE = sa.text(
    "status IN ('new', 'open', 'on_hold') AND (escalated_at IS NULL OR resolution_breached = 0"
    " OR (first_response_at IS NULL AND first_response_breached = 0))")
POSTGRESQL_PREDICATE = sa.text(
    "status IN ('new', 'open', 'on_hold') AND (escalated_at IS NULL OR NOT resolution_breached"
    " OR (first_response_at IS NULL AND NOT first_response_breached))")


def upgrade():
    op.create_index("ix_tickets_sla_check", "tickets",
                    ["resolution_due_at", "first_response_due_at"],
                    sqlite_where=SQLITE_PREDICATE, postgresql_where=POSTGRESQL_PREDICATE)


def downgrade():
    op.drop_index("ix_tickets_sla_check", table_name="tickets")
