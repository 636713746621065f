"""Each ticket event carries its ticket's report filters (priority, group, category, assignee),
kept equal to the ticket's by triggers, in the report indexes of ticket_events.

A filtered report looked up the ticket of every status change and reply of the period to check
the filter (14 ms each of the two queries at 100,000 tickets, ten times that at a million); it
now reads the same index range as the unfiltered report. The copies follow the ticket's current
values, as the reports always filtered by them: an insert trigger copies them onto a new event,
an update trigger on tickets onto all of the ticket's events (a handful; also when a foreign
key sets a deleted group or category to NULL). Existing events are filled here.

Plain (non-batch) operations: a batch alteration of `tickets` on SQLite could recreate the
table and drop its full-text triggers.

Revision ID: scale3_0002
Revises: scale3_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "scale3_0002"
down_revision = "scale3_0001"
branch_labels = None
depends_on = None

COPIES = {
    "ticket_priority": "priority",
    "ticket_group_id": "group_id",
    "ticket_category_id": "category_id",
    "ticket_assignee_id": "assignee_id",
}
TARGETS = ", ".join(COPIES)
SOURCES = ", ".join(COPIES.values())
WATCHED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in COPIES.values())
INDEXES = {
    "ix_ticket_events_kind_value_created": ["kind", "new_value", "created_at", "old_value",
                                            "ticket_id"],
    "ix_ticket_events_kind_created_actor": ["kind", "created_at", "actor_id", "ticket_id"],
}

SQLITE_TRIGGERS = {
    "ticket_events_copy_report_filters": (
        "AFTER INSERT ON ticket_events BEGIN "
        f"UPDATE ticket_events SET ({TARGETS}) = "
        f"(SELECT {SOURCES} FROM tickets WHERE tickets.id = new.ticket_id) "
        "WHERE id = new.id; END"
    ),
    "tickets_report_filters_to_events": (
        f"AFTER UPDATE OF {SOURCES} ON tickets WHEN {WATCHED} BEGIN "
        f"UPDATE ticket_events SET ({TARGETS}) = "
        f"({', '.join(f'new.{c}' for c in COPIES.values())}) WHERE ticket_id = new.id; END"
    ),
}
PG_FUNCTIONS = {
    "ticket_events_copy_report_filters": (
        f"SELECT {SOURCES} INTO {', '.join(f'NEW.{c}' for c in COPIES)} "
        "FROM tickets WHERE tickets.id = NEW.ticket_id; RETURN NEW;"
    ),
    "tickets_report_filters_to_events": (
        f"UPDATE ticket_events SET ({TARGETS}) = "
        f"({', '.join(f'NEW.{c}' for c in COPIES.values())}) WHERE ticket_id = NEW.id; "
        "RETURN NULL;"
    ),
}
PG_TRIGGERS = {
    "ticket_events_copy_report_filters": "BEFORE INSERT ON ticket_events FOR EACH ROW",
    "tickets_report_filters_to_events": (
        f"AFTER UPDATE OF {SOURCES} ON tickets FOR EACH ROW WHEN "
        f"({' OR '.join(f'OLD.{c} IS DISTINCT FROM NEW.{c}' for c in COPIES.values())})"
    ),
}


def upgrade():
    op.add_column("ticket_events", sa.Column("ticket_priority", sa.String(length=20)))
    for column in ("ticket_group_id", "ticket_category_id", "ticket_assignee_id"):
        op.add_column("ticket_events", sa.Column(column, sa.Integer()))
    op.execute(
        f"UPDATE ticket_events SET ({TARGETS}) = ({SOURCES}) "  # noqa: S608 (fixed names)
        "FROM tickets WHERE tickets.id = ticket_events.ticket_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        for name, body in PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                       f"$$ BEGIN {body} END $$")
            op.execute(f"CREATE TRIGGER {name} {PG_TRIGGERS[name]} EXECUTE FUNCTION {name}()")
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="ticket_events")
        op.create_index(name, "ticket_events", [*columns, *COPIES])


def downgrade():
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="ticket_events")
        op.create_index(name, "ticket_events", columns)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ticket_events_copy_report_filters ON ticket_events")
        op.execute("DROP TRIGGER tickets_report_filters_to_events ON tickets")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    for column in COPIES:
        op.drop_column("ticket_events", column)
