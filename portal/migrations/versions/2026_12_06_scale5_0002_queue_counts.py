"""The unsolved tickets counted by the database: the queue's tabs read a few dozen rows.

queue_counts holds the number of unsolved tickets (new, open, pending, on hold) per status,
assignee (0 for nobody), stale flag and slot. Triggers keep it in the transaction of every
change (a new, changed or deleted ticket), so it is exact at every moment; the tabs "All
open", "Unassigned", "My open tickets", "Awaiting customer" and "Stale" are sums over it.
Counting them from the tickets grew with the backlog (12 ms at 1,000,000 tickets, on every full
page whenever any ticket had changed). Solved and closed tickets have no rows.

The slot (ticket id modulo 8) spreads one kind of ticket over several rows: on PostgreSQL a
row's lock is held until its transaction commits, so a single "open, unassigned" row would
make every two transactions that open a ticket wait for each other.

Revision ID: scale5_0002
Revises: scale5_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scale5_0002"
down_revision = "scale5_0001"
branch_labels = None
depends_on = None

SLOTS = 8
UNSOLVED = "{t}.status IN ('new', 'open', 'pending', 'on_hold')"
KEY = ("{t}.status, coalesce({t}.assignee_id, 0), "
       "CASE WHEN {t}.stale_at IS NULL THEN 0 ELSE 1 END, {t}.id % " + str(SLOTS))


def _sqlite_bump(t: str, sign: str) -> str:
    """+/-1 on the row of ticket `t` (new or old), when it is unsolved."""
    return ("INSERT INTO queue_counts (status, assignee_id, stale, slot, tickets) "  # noqa: S608
            f"SELECT {KEY.format(t=t)}, {sign}1 WHERE {UNSOLVED.format(t=t)} "
            "ON CONFLICT (status, assignee_id, stale, slot) "
            "DO UPDATE SET tickets = tickets + excluded.tickets;")


CHANGED = ("old.status IS NOT new.status OR old.assignee_id IS NOT new.assignee_id "
           "OR (old.stale_at IS NULL) <> (new.stale_at IS NULL) OR old.id <> new.id")
SQLITE_TRIGGERS = {
    "queue_counts_insert": "AFTER INSERT ON tickets BEGIN " + _sqlite_bump("new", "+") + " END",
    "queue_counts_delete": "AFTER DELETE ON tickets BEGIN " + _sqlite_bump("old", "-") + " END",
    "queue_counts_update": (
        f"AFTER UPDATE OF id, status, assignee_id, stale_at ON tickets WHEN {CHANGED} BEGIN "
        + _sqlite_bump("old", "-") + _sqlite_bump("new", "+") + " END"),
}

PG_FUNCTION = (
    "CREATE FUNCTION queue_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP IN ('UPDATE', 'DELETE') AND " + UNSOLVED.format(t="OLD") + " THEN "
    "INSERT INTO queue_counts (status, assignee_id, stale, slot, tickets) "
    "VALUES (" + KEY.format(t="OLD") + ", -1) ON CONFLICT (status, assignee_id, stale, slot) "
    "DO UPDATE SET tickets = queue_counts.tickets + EXCLUDED.tickets; END IF; "
    "IF TG_OP IN ('INSERT', 'UPDATE') AND " + UNSOLVED.format(t="NEW") + " THEN "
    "INSERT INTO queue_counts (status, assignee_id, stale, slot, tickets) "
    "VALUES (" + KEY.format(t="NEW") + ", 1) ON CONFLICT (status, assignee_id, stale, slot) "
    "DO UPDATE SET tickets = queue_counts.tickets + EXCLUDED.tickets; END IF; "
    "RETURN NULL; END $$")
PG_TRIGGER = (
    "CREATE TRIGGER queue_counts_change AFTER INSERT OR DELETE OR "
    "UPDATE OF id, status, assignee_id, stale_at ON tickets FOR EACH ROW "
    "EXECUTE FUNCTION queue_counts_change()")


def upgrade():
    op.create_table(
        "queue_counts",
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=False),
        sa.Column("stale", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status", "assignee_id", "stale", "slot",
                                name=op.f("pk_queue_counts")),
    )
    op.execute(  # the unsolved tickets there are
        "INSERT INTO queue_counts (status, assignee_id, stale, slot, tickets) "  # noqa: S608
        f"SELECT {KEY.format(t='tickets')}, count(*) FROM tickets "
        f"WHERE {UNSOLVED.format(t='tickets')} GROUP BY {KEY.format(t='tickets')}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER queue_counts_change ON tickets")
        op.execute("DROP FUNCTION queue_counts_change")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("queue_counts")
