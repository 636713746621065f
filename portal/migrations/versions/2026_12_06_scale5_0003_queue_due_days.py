"""The "Due soon or breached" tab counted from day rows the database keeps.

A waiting ticket (new, open, on hold) is due at its next target: its first response's when it
is still unanswered and that comes first, else its resolution's. queue_due_days holds numbers
of waiting tickets per day of that time, whose sums are the counts; triggers add a row of +1
or -1 in the transaction of every ticket change, so the sums are exact at every moment. The
tab is then the sum of the days before today plus the tickets due from midnight to "soon",
counted from the tickets (a day's worth at most). Counted from the tickets alone it read every
breached ticket of the backlog whenever any ticket changed (20 ms at 1,000,000 tickets).

Rows are only added by the triggers, never updated, and folded into one per day by a scheduled
job, for the reason given in scale5_0002 (no row lock for concurrent ticket changes to wait on).

Revision ID: scale5_0003
Revises: scale5_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "scale5_0003"
down_revision = "scale5_0002"
branch_labels = None
depends_on = None

WAITING = "{t}.status IN ('new', 'open', 'on_hold')"
# The same due time as portal.agent.queue._due_count's two parts.
DUE = ("CASE WHEN {t}.first_response_at IS NULL AND {t}.first_response_due_at IS NOT NULL "
       "AND ({t}.resolution_due_at IS NULL OR {t}.first_response_due_at < {t}.resolution_due_at) "
       "THEN {t}.first_response_due_at ELSE {t}.resolution_due_at END")
COLUMNS = "status, first_response_at, first_response_due_at, resolution_due_at"
CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in COLUMNS.split(", "))


def _counted(t: str) -> str:
    return f"{WAITING.format(t=t)} AND ({DUE.format(t=t)}) IS NOT NULL"


def _sqlite_bump(t: str, sign: str) -> str:
    return ("INSERT INTO queue_due_days (day, tickets) "  # noqa: S608
            f"SELECT date({DUE.format(t=t)}), {sign}1 WHERE {_counted(t)};")


SQLITE_TRIGGERS = {
    "queue_due_days_insert": "AFTER INSERT ON tickets BEGIN " + _sqlite_bump("new", "+") + " END",
    "queue_due_days_delete": "AFTER DELETE ON tickets BEGIN " + _sqlite_bump("old", "-") + " END",
    "queue_due_days_update": (
        f"AFTER UPDATE OF {COLUMNS} ON tickets WHEN {CHANGED} BEGIN "
        + _sqlite_bump("old", "-") + _sqlite_bump("new", "+") + " END"),
}


def _pg_bump(t: str, sign: str) -> str:
    return (f"IF {_counted(t)} THEN INSERT INTO queue_due_days (day, tickets) "
            f"VALUES (({DUE.format(t=t)})::date, {sign}1); END IF; ")


PG_FUNCTION = (
    "CREATE FUNCTION queue_due_days_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'UPDATE' AND NOT (" + " OR ".join(
        f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COLUMNS.split(", ")) + ") THEN "
    "RETURN NULL; END IF; "
    "IF TG_OP IN ('UPDATE', 'DELETE') THEN " + _pg_bump("OLD", "-") + "END IF; "
    "IF TG_OP IN ('INSERT', 'UPDATE') THEN " + _pg_bump("NEW", "") + "END IF; "
    "RETURN NULL; END $$")
PG_TRIGGER = (
    "CREATE TRIGGER queue_due_days_change AFTER INSERT OR DELETE OR "
    f"UPDATE OF {COLUMNS} ON tickets FOR EACH ROW EXECUTE FUNCTION queue_due_days_change()")


def upgrade():
    op.create_table(
        "queue_due_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_due_days")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    day = f"({DUE.format(t='tickets')})::date" if postgresql else f"date({DUE.format(t='tickets')})"
    op.execute(  # the waiting tickets there are
        "INSERT INTO queue_due_days (day, tickets) "  # noqa: S608
        f"SELECT {day}, count(*) FROM tickets WHERE {_counted('tickets')} GROUP BY {day}")
    if postgresql:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER queue_due_days_change ON tickets")
        op.execute("DROP FUNCTION queue_due_days_change")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("queue_due_days")
