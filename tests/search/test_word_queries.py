"""Plain words are parsed word by word (each word's query kept per process): the query must
be the one Whoosh's parser builds from the whole text, for every field set and grouping."""

import random

import pytest
from whoosh import query as wq

from portal.search.queryparse import _parse_words, make_parser
from portal.search.schema import INSTANT_FIELDS, SEARCH_FIELDS, build_schema

VOCABULARY = [
    "printer", "printers", "password", "reset", "the", "a", "and", "or", "not", "is", "to",
    "VPN", "vpn", "Wi", "fi", "2fa", "404", "e2e", "café", "naïve", "Straße", "日本語",
    "invoice_id", "x", "I", "running", "ran", "runs", "sync", "syncing", "of", "it",
]


def _texts(count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 12)))


@pytest.mark.parametrize("any_word", [True, False])
@pytest.mark.parametrize("fields", [SEARCH_FIELDS, INSTANT_FIELDS])
def test_plain_words_give_the_parsers_query(any_word, fields):
    parser = make_parser(build_schema(), any_word, fields)
    for text in _texts(300, seed=len(fields) + any_word):
        ours, whole = _parse_words(parser, text), parser.parse(text)
        assert ours == whole, text
        assert repr(ours) == repr(whole), text
        assert getattr(ours, "scale", None) == getattr(whole, "scale", None), text
    # Asked again (each word's query now kept), the same query still comes back.
    for text in _texts(50, seed=1):
        assert _parse_words(parser, text) == parser.parse(text), text


@pytest.mark.parametrize("text", ['"printer jam"', "print*", "printer AND jam", "NOT printer",
                                  "(printer)", "printer  jam", "printer?", "-printer"])
def test_anything_else_is_left_to_the_parser(text):
    parser = make_parser(build_schema(), True, SEARCH_FIELDS)
    assert _parse_words(parser, text) is None


def test_nothing_searchable_is_the_null_query():
    parser = make_parser(build_schema(), True, SEARCH_FIELDS)
    assert _parse_words(parser, "the a of") is wq.NullQuery is parser.parse("the a of")


def test_word_queries_are_kept_per_parser_not_per_address():
    """A dropped parser's address can be reused by a parser of other fields: its kept word
    queries must not be handed to that one (seen once in a full run: instant fields given
    the search fields' query)."""
    import gc

    from portal.search import queryparse

    schema = build_schema()
    for _ in range(20):
        first = make_parser(schema, False, SEARCH_FIELDS)
        _parse_words(first, "printer running")
        del first
        gc.collect()
        other = make_parser(schema, False, INSTANT_FIELDS)
        assert _parse_words(other, "printer running") == other.parse("printer running")
    assert all(not isinstance(key[0], int) for key in queryparse._word_queries)
