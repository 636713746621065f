"""search_articles / suggest_articles: bounded parsing, visibility filtering, ranking,
typo correction and a small result cache keyed by index generation."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from flask import url_for
from markupsafe import Markup

from portal.search import pg, semantic, spelling
from portal.search.audience import Audience
from portal.search.fallback import NOTICE, database_search
from portal.search.index import INDEX_ERRORS, IndexStore, store
from portal.search.queryparse import (
    MAX_QUERY_WORDS,
    MIN_PREFIX,
    ParsedQuery,
    meaning_text,
    parse,
    plain_words,
    with_corrections,
)
from portal.search.ranking import RankedDoc, allowed_docs, rank, rank_hybrid, rank_in_memory
from portal.search.recovery import index_incomplete, start_rebuild
from portal.search.schema import TEXT_ANALYZER

log = logging.getLogger(__name__)

MAX_PAGE = 50
MAX_PER_PAGE = 50
# Results of recent queries, per process: ~4.4 KB each (6.8 KB with meaning-based ranking),
# so 512 held 2.2-3.4 MB of every worker. What repeats (a popular question, the next page,
# the back button) is recent: on bench/pages.py's search traffic (1-3 of 68 title words)
# 256 hit 20% of 300 queries as 512 did (26% and 29% of 1,000), 128 only 18%.
CACHE_SIZE = 256
# Fewer hits than this and a spelling suggestion is worth computing.
FEW_HITS = 3
MAX_SUGGEST_CHARS = 2000


@dataclass
class Hit:
    article_id: int
    title: str
    slug: str
    section: str
    category: str
    snippet_html: Markup
    score: float

    @property
    def url(self) -> str:
        """The article's page, built when asked: the suggestions panel links each hit to the
        request form's own view instead (url_for is ~40 µs)."""
        return url_for("kb.article", article_id=self.article_id, slug=self.slug)


@dataclass
class SearchResults:
    query: str
    hits: list[Hit]
    total: int
    page: int
    per_page: int
    corrected_query: str | None = None  # set when an automatic corrected search ran
    did_you_mean: str | None = None
    message: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


class _LruCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


_cache = _LruCache(CACHE_SIZE)


def _to_hit(doc: RankedDoc) -> Hit:
    fields = doc.fields
    article_id = int(fields["id"])
    return Hit(
        article_id=article_id,
        title=fields["title"],
        slug=fields["slug"],
        section=fields.get("section_name", ""),
        category=fields.get("category_name", ""),
        snippet_html=doc.snippet,
        score=float(doc.score),
    )


def _run(index_store: IndexStore, text: str, audience: Audience, *, page: int, per_page: int,
         category_id: int | None, instant: bool, any_word: bool, meaning: str | None = None,
         keywords_only: bool = False) -> tuple[ParsedQuery, list[Hit], int, bool]:
    """Parse + rank one query, through the cache (key includes the index generation).

    `meaning` is what the encoder reads (default: the cleaned query); `keywords_only` ranks
    by keywords alone (instant results while typing: the model runs once the person
    pauses). Returns the parsed query, one page of hits, the total, and whether
    meaning-based ranking ran (it corrects spelling itself, so the caller must not try again
    with a correction).
    """
    if pg.active():
        return pg.run(text, audience, page=page, per_page=per_page, category_id=category_id,
                      instant=instant, any_word=any_word, meaning=meaning,
                      keywords_only=keywords_only)
    searcher = index_store.searcher()
    hybrid = not keywords_only and semantic.applies_to(text)
    key = (index_store.path, searcher.reader().generation(), id(searcher), text, meaning,
           audience, page, per_page, category_id, instant, any_word,
           hybrid and (semantic.mode(), semantic.signature()))
    cached = _cache.get(key)
    if cached is not None:
        return cached
    parsed = parse(text, searcher, any_word=any_word, prefix_last=instant)
    hits: list[Hit] = []
    total = 0
    ranked = None
    if parsed.query is not None:
        if hybrid:
            typed_query = parsed.query if any_word else parse(
                text, searcher, any_word=True, prefix_last=instant).query
            keyword_query, meaning = typed_query, meaning or parsed.text
            fixes = {} if instant else corrections(index_store, parsed.text)
            if fixes:
                corrected = with_corrections(plain_words(parsed.text), fixes)
                keyword_query = parse(corrected, searcher, any_word=True).query or typed_query
                meaning = with_corrections(meaning, fixes)
            ranked = rank_hybrid(index_store, keyword_query, typed_query, meaning, audience,
                                 category_id, page=page, per_page=per_page, instant=instant,
                                 corrected=bool(fixes))
        hybrid_ran = ranked is not None
        if ranked is None:
            ranked = rank_in_memory(index_store, parsed.query, audience, category_id, page=page,
                                    per_page=per_page, snippets=not instant)
        if ranked is None:  # phrases and NOT: Whoosh evaluates them
            allowed = allowed_docs(index_store, audience, category_id)
            ranked = rank(index_store, parsed.query, allowed, page=page, per_page=per_page,
                          snippets=not instant)
        docs, total = ranked
        hits = [_to_hit(d) for d in docs]
    else:
        hybrid_ran = False
    result = (parsed, hits, total, hybrid_ran)
    if semantic.still_ranks_as(key[-1], hybrid):
        _cache.put(key, result)
    return result


def correct_spelling(index_store: IndexStore, text: str) -> str | None:
    """The query's words with misspellings corrected (see `corrections`), or None."""
    if pg.active():
        return pg.correct_spelling(text)
    fixes = corrections(index_store, text)
    if not fixes:
        return None
    return " ".join(fixes.get(word.lower(), word) for word in plain_words(text).split())


def corrections(index_store: IndexStore, text: str) -> dict[str, str]:
    """Misspelt words of `text` (lowercased) and the indexed words that replace them.

    A word is left alone when it, or its stem, is in the index. Otherwise it is replaced
    only by a word one typing slip away (one letter added, dropped or changed, or two
    neighbours swapped), the one most articles use: further than that, a correct word the
    articles happen not to use is turned into another one ("insurance" -> "instance",
    "burning" -> "bring").
    """
    fixes = {}
    # Each word's answer, once per index generation (the memo looked up once for all words:
    # each look-up checks the searcher is current).
    known = index_store.memo("corrections", lambda _searcher: {})
    for word in {w.lower() for w in plain_words(text).split()}:
        if len(word) >= 3 and word.isalpha():
            if word not in known:
                known[word] = _correct_word(index_store.searcher(), word)
            if known[word]:
                fixes[word] = known[word]
    return fixes


def _correct_word(searcher, word: str) -> str | None:
    """The correction of one word, or None (computed once per word and index generation)."""
    reader = searcher.reader()
    if reader.doc_frequency("spell", word) or _stem_is_indexed(reader, word):
        return None
    # One letter added, dropped or changed (Levenshtein distance 1), or two neighbours swapped
    # (distance 2 for Levenshtein; checked directly, far cheaper than a distance-2 search).
    found = spelling.candidates(reader, word)  # from the mapped word files: same words
    if found is not None:
        close = {*found.suggested, *found.swapped}
        frequency = found.doc_frequency.__getitem__
    else:  # a segment whose word files are not written yet
        close = set(searcher.corrector("spell").suggest(
            word, limit=spelling.SUGGESTIONS, maxdist=1, prefix=1))
        for i in range(len(word) - 1):
            swapped = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            if swapped != word and reader.doc_frequency("spell", swapped):
                close.add(swapped)

        def frequency(w: str) -> int:
            return reader.doc_frequency("spell", w)
    if not close:
        return None
    return max(sorted(close), key=frequency)


def _stem_is_indexed(reader, word: str) -> bool:
    stems = [token.text for token in TEXT_ANALYZER(word)]
    return bool(stems) and all(reader.doc_frequency("body", stem)
                               or reader.doc_frequency("title", stem) for stem in stems)


def search_articles(query: str, audience: Audience, *, page: int = 1, per_page: int = 10,
                    category_id: int | None = None, instant: bool = False,
                    meaning: bool = True) -> SearchResults:
    """Ranked, visibility-filtered, paged search. Never raises for any input.

    `meaning=False` ranks by keywords only (instant results while typing: every keystroke
    would otherwise run the model; the results add meaning once the person pauses)."""
    page = min(max(1, page), MAX_PAGE)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    index_store = store()
    if pg.active() or not index_incomplete(index_store):  # PostgreSQL has no index to lose
        try:
            return _search(index_store, query or "", audience, page, per_page, category_id,
                           instant, meaning)
        except INDEX_ERRORS:
            log.exception("search failed for %r", query)
            index_store.reset()
    start_rebuild(index_store)
    return _fallback(query or "", audience, page, per_page, category_id, instant)


def _fallback(query: str, audience: Audience, page: int, per_page: int,
              category_id: int | None, instant: bool) -> SearchResults:
    """The database's answer while the index is rebuilt: every word, else any word."""
    text = " ".join(plain_words(query).split()[:MAX_QUERY_WORDS])
    hits, total = database_search(text, audience, page=page, per_page=per_page,
                                  category_id=category_id, any_word=instant)
    if total == 0 and not instant:
        hits, total = database_search(text, audience, page=page, per_page=per_page,
                                      category_id=category_id, any_word=True)
    return SearchResults(query=text[:200], hits=hits, total=total, page=page,
                         per_page=per_page, message=None if instant else NOTICE)


def _search(index_store: IndexStore, query: str, audience: Audience, page: int, per_page: int,
            category_id: int | None, instant: bool, meaning: bool) -> SearchResults:
    run = {"page": page, "per_page": per_page, "category_id": category_id, "instant": instant,
           "keywords_only": not meaning}
    # Instant results rank articles with every word first, then those with some of them,
    # in one pass; the search page requires every word and falls back to any word.
    parsed, hits, total, hybrid = _run(index_store, query, audience, any_word=instant, **run)
    notes = list(parsed.notes)
    if parsed.query is None:
        if not notes:
            notes.append("Type a word or two to search, for example “reset password”.")
        return SearchResults(parsed.text, [], 0, page, per_page, message=" ".join(notes))
    result = SearchResults(parsed.text, hits, total, page, per_page)
    if hybrid:
        # Meaning-based ranking already used the corrected words, and its empty answer means
        # the question is unrelated: a correction ("car insurance" -> "car instance") must not
        # make one up.
        if notes:
            result.message = " ".join(notes)
        return result
    # A spelling check costs a scan of the word list: instant results only do it when empty.
    if total == 0 or (total < FEW_HITS and not instant):
        correction = correct_spelling(index_store, parsed.text)
        if correction and correction.lower() != parsed.text.lower():
            _c_parsed, c_hits, c_total, _h = _run(index_store, correction, audience,
                                             any_word=instant, **run)
            if total == 0 and c_total:
                result.hits, result.total = c_hits, c_total
                result.corrected_query = correction
            elif c_total > total:
                result.did_you_mean = correction
    if result.total == 0 and len(parsed.text.split()) > 1 and not instant:
        _p, or_hits, or_total, _h = _run(index_store, parsed.text, audience, any_word=True, **run)
        if or_total:
            result.hits, result.total = or_hits, or_total
            notes.append("No article matches all of your words; these match some of them.")
    if notes:
        result.message = " ".join(notes)
    return result


def suggest_articles(text: str, audience: Audience, limit: int = 5) -> list[Hit]:
    """Articles for free text (a ticket's subject and description): any word may match.

    The encoder reads the text as typed; keywords are its words (a long description: its
    most distinctive ones), spelling corrected. Nothing for questions the knowledge base
    cannot answer.
    """
    index_store = store()
    text = (text or "")[:MAX_SUGGEST_CHARS]
    words = plain_words(text).replace("*", " ").split()
    if len("".join(words)) < MIN_PREFIX:
        return []
    keywords = " ".join(words) if len(words) <= MAX_QUERY_WORDS else _longest_words(words)
    run = {"page": 1, "per_page": max(1, limit), "category_id": None, "instant": False,
           "any_word": True}
    if pg.active() or not index_incomplete(index_store):  # PostgreSQL has no index to lose
        try:
            _parsed, hits, total, hybrid = _run(index_store, keywords, audience,
                                                meaning=meaning_text(text), **run)
            if not total and not hybrid:  # keyword-only ranking: try the corrected words
                correction = correct_spelling(index_store, keywords)
                if correction:
                    _parsed, hits, total, _h = _run(index_store, correction, audience, **run)
            return hits
        except INDEX_ERRORS:
            log.exception("suggestions failed")
            index_store.reset()
    start_rebuild(index_store)
    hits, _total = database_search(keywords, audience, page=1, per_page=max(1, limit),
                                   category_id=None, any_word=True)
    return hits


def _longest_words(words: list[str]) -> str:
    """A description can be long: keep its most distinctive words (longest, deduplicated),
    in the order written."""
    seen: dict[str, None] = {}
    for word in words:
        seen.setdefault(word.lower(), None)
    ranked = sorted(seen, key=len, reverse=True)[:MAX_QUERY_WORDS]
    return " ".join(w for w in seen if w in ranked)
