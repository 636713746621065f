"""Conditions written for SQLite's query planner, the same on PostgreSQL.

SQLite plans from sampled statistics (`PRAGMA analysis_limit`, see db.refresh_planner_statistics)
that rate every value of a column led index at about a thousand rows: a status, a group or an
agent "picks a thousand tickets" where at 1,000,000 tickets it picks 25,000 to 130,000. It then
reads those through the column's index and sorts them, over an index that gives the page's
order or carries every column the query checks. These two helpers tell it otherwise.
"""

from __future__ import annotations

from sqlalchemy import func, literal_column

from portal.extensions import db


def broad(condition):
    """The condition, marked as true for most rows (SQLite's likelihood(…, 0.9)): it is then
    checked on the rows another index gives, not used to pick them. A partial index's
    predicate is still recognised through it."""
    if db.engine.dialect.name != "sqlite":
        return condition
    return func.likelihood(condition, literal_column("0.9"))


def unindexed(column):
    """`column + 0` on SQLite (a number column): the same value, but no index on the column
    can answer it, so it is checked inside the index the rest of the query reads."""
    return column + 0 if db.engine.dialect.name == "sqlite" else column
