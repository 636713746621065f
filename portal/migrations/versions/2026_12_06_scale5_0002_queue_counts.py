"""The unsolved tickets counted by the database: the queue's tabs read a few dozen rows.

queue_counts holds numbers of unsolved tickets (new, open, pending, on hold) per status,
assignee (0 for nobody) and stale flag; their sums are the counts. Triggers add a row of +1
or -1 in the transaction of every change (a new, changed or deleted ticket), so the sums are
exact at every moment; the tabs "All open", "Unassigned", "My open tickets", "Awaiting
customer" and "Stale" are sums over the table. Counting them from the tickets grew with the
backlog (12 ms at 1,000,000 tickets, on every full page whenever any ticket had changed).
Solved and closed tickets have no rows.

Rows are only ever added, never updated, by the triggers: on PostgreSQL an updated row stays
locked until its transaction commits, so one "open, unassigned" counter would make every two
transactions that open a ticket wait for each other (and two that change several tickets in
different orders deadlock). A scheduled job folds the added rows into one per kind
(portal.agent.counts.compact).

Revision ID: scale5_0002
Revises: scale5_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scale5_0002"
down_revision = "scale5_0001"
branch_labels = None
depends_on = None

UNSOLVED = "{t}.status IN ('new', 'open', 'pending', 'on_hold')"
KEY = "{t}.status, coalesce({t}.assignee_id, 0), CASE WHEN {t}.stale_at IS NULL THEN 0 ELSE 1 END"


def _sqlite_bump(t: str, sign: str) -> str:
    """+/-1 on the row of ticket `t` (new or old), when it is unsolved."""
    return ("INSERT INTO queue_counts (status, assignee_id, stale, tickets) "  # noqa: S608
            f"SELECT {KEY.format(t=t)}, {sign}1 WHERE {UNSOLVED.format(t=t)};")


CHANGED = ("old.status IS NOT new.status OR old.assignee_id IS NOT new.assignee_id "
           "OR (old.stale_at IS NULL) <> (new.stale_at IS NULL)")
SQLITE_TRIGGERS = {
    "queue_counts_insert": "AFTER INSERT ON tickets BEGIN " + _sqlite_bump("new", "+") + " END",
    "queue_counts_delete": "AFTER DELETE ON tickets BEGIN " + _sqlite_bump("old", "-") + " END",
    "queue_counts_update": (
        f"AFTER UPDATE OF status, assignee_id, stale_at ON tickets WHEN {CHANGED} BEGIN "
        + _sqlite_bump("old", "-") + _sqlite_bump("new", "+") + " END"),
}

PG_FUNCTION = (
    "CREATE FUNCTION queue_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status AND "
    "OLD.assignee_id IS NOT DISTINCT FROM NEW.assignee_id AND "
    "(OLD.stale_at IS NULL) = (NEW.stale_at IS NULL) THEN RETURN NULL; END IF; "
    "IF TG_OP IN ('UPDATE', 'DELETE') AND " + UNSOLVED.format(t="OLD") + " THEN "
    "INSERT INTO queue_counts (status, assignee_id, stale, tickets) "
    "VALUES (" + KEY.format(t="OLD") + ", -1); END IF; "
    "IF TG_OP IN ('INSERT', 'UPDATE') AND " + UNSOLVED.format(t="NEW") + " THEN "
    "INSERT INTO queue_counts (status, assignee_id, stale, tickets) "
    "VALUES (" + KEY.format(t="NEW") + ", 1); END IF; "
    "RETURN NULL; END $$")
PG_TRIGGER = (
    "CREATE TRIGGER queue_counts_change AFTER INSERT OR DELETE OR "
    "UPDATE OF status, assignee_id, stale_at ON tickets FOR EACH ROW "
    "EXECUTE FUNCTION queue_counts_change()")


def upgrade():
    op.create_table(
        "queue_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=False),
        sa.Column("stale", sa.Integer(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_counts")),
    )
    op.execute(  # the unsolved tickets there are
        "INSERT INTO queue_counts (status, assignee_id, stale, tickets) "  # noqa: S608
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
