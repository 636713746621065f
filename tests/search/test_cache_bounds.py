"""What a web worker keeps of the queries it served stays within a bound, whatever people
type: every new word, prefix or question adds an entry, so each per-process cache holds at
most the entries (and so the megabytes) its bound says."""

import itertools
import string
import tracemalloc

from whoosh.filedb.filestore import RamStorage

from portal.search import queryparse, service
from portal.search.queryparse import (
    MAX_EXPANSION_ENTRIES,
    WORD_QUERIES,
    _expansions,
    _parse_words,
    make_parser,
)
from portal.search.schema import SEARCH_FIELDS, build_schema


def _made_up_words(count: int):
    """Distinct words no dictionary holds, as misspellings and typing make them."""
    letters = itertools.product(string.ascii_lowercase, repeat=4)
    return ["q" + "".join(next(letters)) for _ in range(count)]


def test_word_queries_stay_within_a_few_megabytes():
    queryparse._word_queries.clear()
    parser = make_parser(build_schema(), True, SEARCH_FIELDS)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for word in _made_up_words(WORD_QUERIES + 500):
            _parse_words(parser, word)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(queryparse._word_queries) == WORD_QUERIES
    assert held < 6_000_000  # ~1.2 KB a word: 20,000 words were 23 MB of each worker
    assert _parse_words(parser, "printer").normalize() == parser.parse("printer").normalize()
    queryparse._word_queries.clear()


def test_prefix_expansions_of_one_index_generation_are_bounded():
    index = RamStorage().create_index(build_schema())
    with index.writer() as writer:
        for n, word in enumerate(_made_up_words(300)):
            writer.add_document(id=str(n), title=f"{word} printer", body=f"{word} printers")
    with index.reader() as reader:
        assert _expansions(reader, "title", "print*", "print", False) == ("printer",)
        for prefix in itertools.islice(_prefixes(), MAX_EXPANSION_ENTRIES + 100):
            _expansions(reader, "title", prefix + "*", prefix, False)
            assert len(queryparse._expansion_cache[reader]) <= MAX_EXPANSION_ENTRIES
        assert _expansions(reader, "title", "qaaab*", "qaaab", False) == ("qaaab",)


def _prefixes():
    for length in (3, 4, 5):
        for letters in itertools.product(string.ascii_lowercase, repeat=length):
            yield "".join(letters)


def test_the_result_cache_keeps_only_recent_queries():
    assert service.CACHE_SIZE <= 256  # ~4-7 KB each: 512 were 2.2-3.4 MB of each worker
    cache = service._LruCache(service.CACHE_SIZE)
    for n in range(service.CACHE_SIZE * 3):
        cache.put(n, n)
        cache.get(0)  # asked again and again: stays
    assert len(cache._data) == service.CACHE_SIZE
    assert cache.get(0) == 0 and cache.get(1) is None
