"""Searches per day and normalised text, kept by the database: the reports' self-service figures
("KB searches", "top searches with no results") read a row per day and search text.

Counting the period's searches and grouping its searches with no result read every search of
the period (at 1,000,000 tickets a month is 250,000 searches: 60-65 ms of each first report,
growing with traffic). Triggers keep report_search_days in the transaction of every insert,
change or deletion of a search_log row, so it is exact at every moment. One row per day and
text: on PostgreSQL two transactions wait on each other only when both log the same text on
the same day (a search's transaction is short); a single row per day would queue every search.

Revision ID: scale5_0001
Revises: scale4_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "scale5_0001"
down_revision = "scale4_0003"
branch_labels = None
depends_on = None

NO_RESULT = "({r}.result_count = 0)"


def _sqlite_bump(row: str, sign: str) -> str:
    return ("INSERT INTO report_search_days (day, normalized, searches, no_results) "  # noqa: S608
            f"VALUES (date({row}.created_at), {row}.normalized, {sign}1, "
            f"{sign}{NO_RESULT.format(r=row)}) ON CONFLICT (day, normalized) DO UPDATE SET "
            "searches = searches + excluded.searches, "
            "no_results = no_results + excluded.no_results;")


SQLITE_TRIGGERS = {
    "report_search_days_insert": (
        "AFTER INSERT ON search_log BEGIN " + _sqlite_bump("new", "+") + " END"),
    "report_search_days_delete": (
        "AFTER DELETE ON search_log BEGIN " + _sqlite_bump("old", "-") + " END"),
    "report_search_days_update": (
        "AFTER UPDATE OF created_at, normalized, result_count ON search_log BEGIN "
        + _sqlite_bump("old", "-") + _sqlite_bump("new", "+") + " END"),
}

PG_FUNCTIONS = {
    "report_search_days_bump": (
        "(d date, q varchar, s integer, z integer) RETURNS void LANGUAGE sql AS $$ "
        "INSERT INTO report_search_days (day, normalized, searches, no_results) "
        "VALUES (d, q, s, z) ON CONFLICT (day, normalized) DO UPDATE SET "
        "searches = report_search_days.searches + EXCLUDED.searches, "
        "no_results = report_search_days.no_results + EXCLUDED.no_results $$"),
    "report_search_days_change": (
        "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM report_search_days_bump("
        f"OLD.created_at::date, OLD.normalized, -1, -({NO_RESULT.format(r='OLD')})::integer); "
        "END IF; "
        "IF TG_OP IN ('INSERT', 'UPDATE') THEN PERFORM report_search_days_bump("
        f"NEW.created_at::date, NEW.normalized, 1, ({NO_RESULT.format(r='NEW')})::integer); "
        "END IF; RETURN NULL; END $$"),
}
PG_TRIGGER = (
    "CREATE TRIGGER report_search_days_change AFTER INSERT OR DELETE OR "
    "UPDATE OF created_at, normalized, result_count ON search_log FOR EACH ROW "
    "EXECUTE FUNCTION report_search_days_change()")


def _fill(day: str) -> None:
    """The counts of the searches logged so far."""
    op.execute(
        "INSERT INTO report_search_days (day, normalized, searches, no_results) "  # noqa: S608
        f"SELECT {day}, normalized, count(*), "
        "sum(CASE WHEN result_count = 0 THEN 1 ELSE 0 END) FROM search_log "
        f"GROUP BY {day}, normalized")


def upgrade():
    op.create_table(
        "report_search_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("normalized", sa.String(length=200), nullable=False),
        sa.Column("searches", sa.Integer(), nullable=False),
        sa.Column("no_results", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "normalized", name=op.f("pk_report_search_days")),
    )
    if op.get_bind().dialect.name == "postgresql":
        _fill("created_at::date")
        for name, body in PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}{body}")
        op.execute(PG_TRIGGER)
    else:
        _fill("date(created_at)")
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER report_search_days_change ON search_log")
        for name in reversed(list(PG_FUNCTIONS)):
            op.execute(f"DROP FUNCTION {name}")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("report_search_days")
