"""Schema changes go through Alembic only; `flask db upgrade` and tests call these."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out of model-vs-database comparisons what the models cannot describe: the
    full-text search tables (SQLite FTS5 and their shadow tables, `fts_*`) and expression
    indexes (`ix_fts_*`) that migrations create by hand."""
    unmanaged = type_ == "table" and (name or "").startswith("fts_")
    unmanaged |= type_ == "index" and (name or "").startswith("ix_fts_")
    return not (reflected and compare_to is None and unmanaged)


def alembic_config(app: Flask) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = app.extensions["portal_db_engine"]
    return config


def upgrade(app: Flask, revision: str = "heads") -> None:
    command.upgrade(alembic_config(app), revision)


def revision(app: Flask, message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    command.revision(alembic_config(app), message=message, autogenerate=True)
