"""agent queue full-text search; report indexes (no-result searches, filters by ticket)

SQLite: an FTS5 table `fts_tickets`, one document per ticket (subject, requester, every message
body) with the view `fts_ticket_documents` as external content, kept in step by triggers on
`tickets` and `messages` and filled from the existing rows. PostgreSQL: GIN indexes on
`to_tsvector('simple', ...)` expressions of the ticket fields and of message bodies
(punctuation turned into spaces, as SQLite's unicode61 tokenizer splits words).
The models do not describe these; `portal.migrate.include_object` leaves them out of
model-vs-database comparisons. A later SQLite batch alteration of `tickets` or `messages`
recreates the table and drops its triggers: such a migration must create
the triggers again (copy SQLITE_TRIGGERS) and rebuild `fts_tickets`.

Revision ID: 0004_agent_search
Revises: 0004_agent
"""

from alembic import op

revision = "0004_agent_search"
down_revision = "0004_agent"
branch_labels = None
depends_on = None

TOKENIZE = "unicode61 remove_diacritics 2"
# One search document per ticket (rowid = ticket id): its subject, requester, and every message
# body, so that each word of a search may be anywhere in the ticket. The FTS5 table's external
# content is this view; the index stores no copy of the text.
SQLITE_VIEW = """
CREATE VIEW fts_ticket_documents AS
SELECT t.id AS id, t.subject AS subject,
       t.requester_name || ' ' || t.requester_email AS requester,
       (SELECT group_concat(m.body, ' ') FROM messages m WHERE m.ticket_id = t.id) AS body
FROM tickets t
"""
COLUMNS = "subject, requester, body"


def _forget(ticket_id: str) -> str:
    """Remove a ticket's document as it is now (FTS5 must be given the indexed text): run
    BEFORE the change. Skipped when the ticket is not indexed, so it can never go wrong twice."""
    return (
        f"INSERT INTO fts_tickets(fts_tickets, rowid, {COLUMNS}) "
        f"SELECT 'delete', id, {COLUMNS} FROM fts_ticket_documents WHERE id = {ticket_id} "
        f"AND EXISTS (SELECT 1 FROM fts_tickets_docsize WHERE id = {ticket_id});"
    )


def _index(ticket_id: str) -> str:
    """Index a ticket's document as it is now: run AFTER the change."""
    return (
        f"INSERT INTO fts_tickets(rowid, {COLUMNS}) "
        f"SELECT id, {COLUMNS} FROM fts_ticket_documents WHERE id = {ticket_id} "
        f"AND NOT EXISTS (SELECT 1 FROM fts_tickets_docsize WHERE id = {ticket_id});"
    )


TICKET_FIELDS = "subject, requester_name, requester_email"
SQLITE_TRIGGERS = {
    "fts_tickets_insert": f"AFTER INSERT ON tickets BEGIN {_index('new.id')} END",
    "fts_tickets_before_update": (
        f"BEFORE UPDATE OF {TICKET_FIELDS} ON tickets BEGIN {_forget('old.id')} END"
    ),
    "fts_tickets_after_update": (
        f"AFTER UPDATE OF {TICKET_FIELDS} ON tickets BEGIN {_index('new.id')} END"
    ),
    "fts_tickets_delete": f"BEFORE DELETE ON tickets BEGIN {_forget('old.id')} END",
    "fts_messages_before_insert": (
        f"BEFORE INSERT ON messages BEGIN {_forget('new.ticket_id')} END"
    ),
    "fts_messages_after_insert": f"AFTER INSERT ON messages BEGIN {_index('new.ticket_id')} END",
    "fts_messages_before_update": (
        "BEFORE UPDATE OF body, ticket_id ON messages "
        f"BEGIN {_forget('old.ticket_id')} {_forget('new.ticket_id')} END"
    ),
    "fts_messages_after_update": (
        "AFTER UPDATE OF body, ticket_id ON messages "
        f"BEGIN {_index('old.ticket_id')} {_index('new.ticket_id')} END"
    ),
    "fts_messages_before_delete": (
        f"BEFORE DELETE ON messages BEGIN {_forget('old.ticket_id')} END"
    ),
    "fts_messages_after_delete": f"AFTER DELETE ON messages BEGIN {_index('old.ticket_id')} END",
}
# Must stay identical to the expressions in portal/agent/search.py.
POSTGRES_INDEXES = {
    "ix_fts_tickets": (
        "tickets",
        "to_tsvector('simple'::regconfig, regexp_replace(subject || ' ' || requester_name"
        " || ' ' || requester_email, '[^[:alnum:]]+', ' ', 'g'))",
    ),
    "ix_fts_messages": (
        "messages",
        "to_tsvector('simple'::regconfig, regexp_replace(body, '[^[:alnum:]]+', ' ', 'g'))",
    ),
}


CREATED_REPORT = ["created_at", "priority", "assignee_id", "group_id", "category_id",
                  "requester_id"]
STATUS_EVENTS = ["kind", "new_value", "created_at", "old_value"]


def upgrade():
    with op.batch_alter_table("search_log") as batch:
        batch.create_index(
            "ix_search_log_no_results", ["result_count", "created_at", "normalized"]
        )
    # Report filters by ticket: covering indexes, so no table rows are read.
    with op.batch_alter_table("tickets") as batch:
        batch.create_index("ix_tickets_created_report", CREATED_REPORT)
    with op.batch_alter_table("ticket_events") as batch:
        batch.drop_index("ix_ticket_events_kind_value_created")
        batch.create_index("ix_ticket_events_kind_value_created", [*STATUS_EVENTS, "ticket_id"])
        # A prefix of ix_ticket_events_kind_created_actor, which covers the report's queries.
        batch.drop_index("ix_ticket_events_kind_created")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(SQLITE_VIEW)
        op.execute(
            f"CREATE VIRTUAL TABLE fts_tickets USING fts5({COLUMNS}, "
            f"content='fts_ticket_documents', content_rowid='id', tokenize='{TOKENIZE}')"
        )
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        op.execute("INSERT INTO fts_tickets(fts_tickets) VALUES ('rebuild')")
    elif dialect == "postgresql":
        for name, (table, expression) in POSTGRES_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON {table} USING gin (({expression}))")


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS fts_tickets")
        op.execute("DROP VIEW IF EXISTS fts_ticket_documents")
    elif dialect == "postgresql":
        for name in POSTGRES_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    with op.batch_alter_table("ticket_events") as batch:
        batch.create_index("ix_ticket_events_kind_created", ["kind", "created_at"])
        batch.drop_index("ix_ticket_events_kind_value_created")
        batch.create_index("ix_ticket_events_kind_value_created", STATUS_EVENTS)
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_created_report")
    with op.batch_alter_table("search_log") as batch:
        batch.drop_index("ix_search_log_no_results")
