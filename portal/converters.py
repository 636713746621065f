"""URL converters shared by every blueprint."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_DB_INT = 2**63 - 1  # the largest id SQLite and PostgreSQL BIGINT hold


class DatabaseIntConverter(IntegerConverter):
    """`<int:id>` that only matches numbers the database can hold.

    Werkzeug's converter takes any number of digits, and SQLite raises OverflowError on a
    parameter past 64 bits: /kb/articles/99999999999999999999999-x was a 500, not a 404.
    """

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_DB_INT, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)


def init_app(app) -> None:
    """Must run before any blueprint is registered: rules pick their converter when added."""
    app.url_map.converters["int"] = DatabaseIntConverter
