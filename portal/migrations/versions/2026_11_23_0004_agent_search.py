"""agent queue full-text search and the no-result-searches report index

SQLite: two FTS5 external-content tables, `fts_tickets` (subject, requester name and email over
`tickets`) and `fts_messages` (body over `messages`), kept in sync by triggers and filled from
the existing rows. PostgreSQL: GIN indexes on the same text as `to_tsvector('simple', ...)`
expressions (punctuation turned into spaces, as SQLite's unicode61 tokenizer splits words).
The models do not describe these; `portal.migrate.include_object` leaves them out of
model-vs-database comparisons. A later SQLite batch alteration of `tickets` or `messages`
recreates the table and drops its triggers: such a migration must call `_sqlite_triggers()`
again (copy it) and rebuild both tables.

Revision ID: 0004_agent_search
Revises: 0004_agent
"""

from alembic import op

revision = "0004_agent_search"
down_revision = "0004_agent"
branch_labels = None
depends_on = None

TOKENIZE = "unicode61 remove_diacritics 2"
SQLITE_TABLES = {
    # fts table: (content table, indexed columns)
    "fts_tickets": ("tickets", ("subject", "requester_name", "requester_email")),
    "fts_messages": ("messages", ("body",)),
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


def _sqlite_triggers(fts: str, table: str, columns: tuple[str, ...]) -> list[str]:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    add = f"INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new});"
    remove = f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old});"
    return [
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {remove} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {names} ON {table} "
        f"BEGIN {remove} {add} END",
    ]


def upgrade():
    with op.batch_alter_table("search_log") as batch:
        batch.create_index(
            "ix_search_log_no_results", ["result_count", "created_at", "normalized"]
        )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for fts, (table, columns) in SQLITE_TABLES.items():
            op.execute(
                f"CREATE VIRTUAL TABLE {fts} USING fts5({', '.join(columns)}, "
                f"content='{table}', content_rowid='id', tokenize='{TOKENIZE}')"
            )
            for statement in _sqlite_triggers(fts, table, columns):
                op.execute(statement)
            op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    elif dialect == "postgresql":
        for name, (table, expression) in POSTGRES_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON {table} USING gin (({expression}))")


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for fts in SQLITE_TABLES:
            for suffix in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
    elif dialect == "postgresql":
        for name in POSTGRES_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    with op.batch_alter_table("search_log") as batch:
        batch.drop_index("ix_search_log_no_results")
