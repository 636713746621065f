"""Schema changes go through Alembic only; `flask db upgrade` and tests call these."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from portal.db import refresh_planner_statistics

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out of model-vs-database comparisons what the models cannot describe: the
    full-text search tables (SQLite FTS5 and their shadow tables, `fts_*`; PostgreSQL search),
    expression indexes (`ix_fts_*`) and the PostgreSQL rate-limit counters
    (`rate_limit_counters`) that migrations create by hand."""
    unmanaged = type_ == "table" and (name or "").startswith(("fts_", "rate_limit_"))
    unmanaged |= type_ == "index" and (name or "").startswith("ix_fts_")
    return not (reflected and compare_to is None and unmanaged)


def alembic_config(app: Flask) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = app.extensions["portal_db_engine"]
    return config


# Any fixed number, the same on every host: pg_advisory_lock's key for "migrating".
MIGRATION_LOCK = 7_310_017


def upgrade(app: Flask, revision: str = "heads") -> None:
    """Upgrade the schema. On PostgreSQL under an advisory lock: hosts starting together on
    an empty database migrate one after the other (the second finds nothing left to do)."""
    engine = app.extensions["portal_db_engine"]
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(app), revision)
        with Session(engine) as session, session.begin():  # new indexes need statistics
            refresh_planner_statistics(session)
        return
    with engine.connect() as lock_connection:
        lock_connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        lock_connection.commit()
        try:
            command.upgrade(alembic_config(app), revision)
        finally:
            lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                    {"key": MIGRATION_LOCK})
            lock_connection.commit()


def revision(app: Flask, message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    command.revision(alembic_config(app), message=message, autogenerate=True)
