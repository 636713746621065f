"""parse_id / parse_page: the one way ids and page numbers are read from requests."""

import pytest

from portal.converters import MAX_DB_INT, MAX_PAGE, parse_id, parse_page


@pytest.mark.parametrize("value,expected", [
    ("42", 42), (" 42 ", 42), ("0", 0), (str(MAX_DB_INT), MAX_DB_INT),
    (str(MAX_DB_INT + 1), None), ("9" * 40, None), ("1²", None), ("①", None), ("٣", None),
    ("-5", None), ("1_000", None), ("+1", None), ("", None), (None, None), ("4.0", None),
])
def test_parse_id(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("3", 3), ("0", 1), (None, 1), ("x", 1), ("1²", 1), (str(MAX_PAGE + 1), MAX_PAGE),
    ("9" * 40, 1),
])
def test_parse_page(value, expected):
    assert parse_page(value) == expected
