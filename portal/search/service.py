"""search_articles / suggest_articles: bounded parsing, visibility filtering, ranking,
typo correction and a small result cache keyed by index generation."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from flask import url_for
from markupsafe import Markup

from portal.search import pg, semantic
from portal.search.audience import Audience
from portal.search.fallback import NOTICE, database_search
from portal.search.index import INDEX_ERRORS, IndexStore, store
from portal.search.queryparse import MAX_QUERY_WORDS, MIN_PREFIX, ParsedQuery, parse, plain_words
from portal.search.ranking import RankedDoc, allowed_docs, rank, rank_hybrid, rank_in_memory
from portal.search.recovery import index_incomplete, start_rebuild

log = logging.getLogger(__name__)

MAX_PAGE = 50
MAX_PER_PAGE = 50
CACHE_SIZE = 512
# Fewer hits than this and a spelling suggestion is worth computing.
FEW_HITS = 3
MAX_SUGGEST_CHARS = 2000


@dataclass
class Hit:
    article_id: int
    title: str
    url: str
    section: str
    category: str
    snippet_html: Markup
    score: float


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
        url=url_for("kb.article", article_id=article_id, slug=fields["slug"]),
        section=fields.get("section_name", ""),
        category=fields.get("category_name", ""),
        snippet_html=doc.snippet,
        score=float(doc.score),
    )


def _run(index_store: IndexStore, text: str, audience: Audience, *, page: int, per_page: int,
         category_id: int | None, instant: bool, any_word: bool, meaning: bool = True
         ) -> tuple[ParsedQuery, list[Hit], int]:
    """Parse + rank one query, through the cache (key includes the index generation)."""
    if pg.active():
        return pg.run(text, audience, page=page, per_page=per_page, category_id=category_id,
                      instant=instant, any_word=any_word)
    searcher = index_store.searcher()
    hybrid = meaning and semantic.applies_to(text)
    key = (index_store.path, searcher.reader().generation(), id(searcher), text, audience,
           page, per_page, category_id, instant, any_word,
           hybrid and (semantic.mode(), semantic.signature()))
    cached = _cache.get(key)
    if cached is not None:
        return cached
    parsed = parse(text, searcher, any_word=any_word, prefix_last=instant)
    hits: list[Hit] = []
    total = 0
    if parsed.query is not None:
        ranked = None
        if hybrid:
            any_word_query = parsed.query if any_word else parse(
                text, searcher, any_word=True, prefix_last=instant).query
            ranked = rank_hybrid(index_store, any_word_query, parsed.text, audience,
                                 category_id, page=page, per_page=per_page, instant=instant)
        if ranked is None:
            ranked = rank_in_memory(index_store, parsed.query, audience, category_id, page=page,
                                    per_page=per_page, snippets=not instant)
        if ranked is None:  # phrases and NOT: Whoosh evaluates them
            allowed = allowed_docs(index_store, audience, category_id)
            ranked = rank(searcher, parsed.query, allowed, page=page, per_page=per_page,
                          snippets=not instant)
        docs, total = ranked
        hits = [_to_hit(d) for d in docs]
    result = (parsed, hits, total)
    _cache.put(key, result)
    return result


def correct_spelling(index_store: IndexStore, text: str) -> str | None:
    """The query with unknown words replaced by the closest indexed words, or None."""
    if pg.active():
        return pg.correct_spelling(text)
    searcher = index_store.searcher()
    reader = searcher.reader()
    words = plain_words(text).split()
    if not words:
        return None

    def compute(searcher_):
        corrector = searcher_.corrector("spell")
        changed = False
        out = []
        for word in words:
            lower = word.lower()
            if (len(lower) < 3 or "*" in lower or not lower.isalpha()
                    or reader.doc_frequency("spell", lower)):
                out.append(word)
                continue
            maxdist = 1 if len(lower) <= 4 else 2
            suggestions = corrector.suggest(lower, limit=1, maxdist=maxdist, prefix=1)
            if suggestions:
                out.append(suggestions[0])
                changed = True
            else:
                out.append(word)
        return " ".join(out) if changed else None

    return index_store.memo(("correct", text.lower()), compute)


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
           "meaning": meaning}
    # Instant results rank articles with every word first, then those with some of them,
    # in one pass; the search page requires every word and falls back to any word.
    parsed, hits, total = _run(index_store, query, audience, any_word=instant, **run)
    notes = list(parsed.notes)
    if parsed.query is None:
        if not notes:
            notes.append("Type a word or two to search, for example “reset password”.")
        return SearchResults(parsed.text, [], 0, page, per_page, message=" ".join(notes))
    result = SearchResults(parsed.text, hits, total, page, per_page)
    # A spelling check costs a scan of the word list: instant results only do it when empty.
    if total == 0 or (total < FEW_HITS and not instant):
        correction = correct_spelling(index_store, parsed.text)
        if correction and correction.lower() != parsed.text.lower():
            c_parsed, c_hits, c_total = _run(index_store, correction, audience,
                                             any_word=instant, **run)
            if total == 0 and c_total:
                result.hits, result.total = c_hits, c_total
                result.corrected_query = correction
            elif c_total > total:
                result.did_you_mean = correction
    if result.total == 0 and len(parsed.text.split()) > 1 and not instant:
        _p, or_hits, or_total = _run(index_store, parsed.text, audience, any_word=True, **run)
        if or_total:
            result.hits, result.total = or_hits, or_total
            notes.append("No article matches all of your words; these match some of them.")
    if notes:
        result.message = " ".join(notes)
    return result


def suggest_articles(text: str, audience: Audience, limit: int = 5) -> list[Hit]:
    """Articles for free text (a ticket's subject and description): any word may match."""
    index_store = store()
    words = plain_words((text or "")[:MAX_SUGGEST_CHARS])
    if len(words.replace("*", "").strip()) < MIN_PREFIX:
        return []
    if pg.active() or not index_incomplete(index_store):  # PostgreSQL has no index to lose
        try:
            _parsed, hits, _total = _run(
                index_store, _longest_words(words), audience, page=1, per_page=max(1, limit),
                category_id=None, instant=False, any_word=True,
            )
            return hits
        except INDEX_ERRORS:
            log.exception("suggestions failed")
            index_store.reset()
    start_rebuild(index_store)
    hits, _total = database_search(_longest_words(words), audience, page=1,
                                   per_page=max(1, limit), category_id=None, any_word=True)
    return hits


def _longest_words(words: str) -> str:
    """A description can be long: keep its most distinctive words (longest, deduplicated)."""
    seen: dict[str, None] = {}
    for word in words.replace("*", " ").split():
        seen.setdefault(word.lower(), None)
    ranked = sorted(seen, key=len, reverse=True)[:MAX_QUERY_WORDS]
    return " ".join(w for w in seen if w in ranked)
