"""Any query a person can type gives results or a clear message, never an error, never slow."""

import random
import time

import pytest

from portal.search import Audience, search_articles, suggest_articles
from portal.search.index import store
from portal.search.queryparse import MAX_EXPANSIONS, MAX_QUERY_WORDS, parse

NASTY = [
    "", " ", '"', '""', '"reset password', 'reset password"', "*", "**", "?", "*a", "a*",
    "p*", "pa*", "*ass*", "a?*?*?*", "AND", "OR", "NOT", "AND OR NOT", "reset AND", "OR reset",
    "NOT reset", "reset NOT", "(", ")", "((((", "))))", "(reset", "reset)", "[a TO z]",
    "{a TO z}", "title:reset", "status:draft", "visibility:internal", "*:*", "reset^99",
    "reset~2", "\\", "\\\\", "'", "don't", "\x00", "\u200b", "\ufeff", "emoji 🙂🔥", "🙂",
    "パスワード", "пароль", "كلمة المرور", "पासवर्ड", "Ωμέγα", "<script>alert(1)</script>",
    "%", "%%", "_", "' OR 1=1 --", "reset" * 500, "a " * 2000, "x" * 10_000,
    " ".join(f"w{n}*" for n in range(100)), "\n\t\r", "ANDNOT", "ANDMAYBE", "reset^", "^",
    "pa?s*", "re?et", "pass*word",
]


def random_inputs(count: int) -> list[str]:
    rng = random.Random(1234)
    alphabet = list('abcdeé *?"()[]{}:^~!-+\\/\'.,;|&<>🙂パ') + ["AND ", "OR ", "NOT "]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
            for _ in range(count)]


@pytest.fixture
def corpus(make_article):
    for n in range(30):
        make_article(f"Password topic {n}", f"pass{n}word passage passing passes reset {n}",
                     index=False)
    make_article("Reset password", "reset your password")


def test_every_nasty_input_answers_quickly(corpus):
    started = time.perf_counter()
    for text in NASTY + random_inputs(120):
        for instant in (False, True):
            results = search_articles(text, Audience.PUBLIC, instant=instant)
            assert isinstance(results.total, int)
            assert results.hits or results.total == 0
            if not text.strip():
                assert results.message
        assert isinstance(suggest_articles(text, Audience.CUSTOMERS), list)
    # Hundreds of searches; a pathological one (unbounded expansion) would take seconds alone.
    assert time.perf_counter() - started < 20


def test_empty_and_symbol_only_queries_get_a_message(corpus):
    for text in ("", "🙂", "*", "AND", "((", "the"):
        results = search_articles(text, Audience.PUBLIC)
        assert results.total == 0 and results.message, text


def test_long_input_is_cut_and_said_so(corpus):
    results = search_articles("reset " * 300, Audience.PUBLIC)
    assert "first" in results.message
    assert results.hits


def test_wildcards_are_bounded(corpus):
    searcher = store().searcher()
    parsed = parse("pass*", searcher)
    terms = {t for f, t in parsed.query.iter_all_terms() if f == "body"}
    assert 0 < len(terms) <= MAX_EXPANSIONS
    too_short = parse("p*", searcher)
    assert too_short.query is None and "at least 2 letters" in too_short.notes[0]
    words = parse(" ".join(f"word{n}" for n in range(50)), searcher)
    assert len({t for f, t in words.query.iter_all_terms() if f == "title"}) == MAX_QUERY_WORDS
