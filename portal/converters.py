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



MAX_PAGE = 100_000  # far past any real list; (page - 1) * per_page stays a small number


def parse_id(value: str | None, maximum: int = MAX_DB_INT) -> int | None:
    """A whole number from a query string or form field, or None when it is not one.

    ASCII digits only: `str.isdigit()` accepts "1²" and "①", which `int()` refuses (a 500),
    and `int()` itself accepts "-5" and "1_000". Numbers past `maximum` (by default the
    database's integer range, where SQLite raises OverflowError) are None too.
    """
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if number <= maximum else None


def parse_page(value: str | None) -> int:
    """A 1-based page number: anything unreadable is page 1, and it never passes MAX_PAGE
    (so OFFSET stays within the database's range)."""
    return min(max(parse_id(value) or 1, 1), MAX_PAGE)
