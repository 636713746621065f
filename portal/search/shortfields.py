"""Instant results from in-memory postings of the short fields (title, labels, section).

Whoosh walks its posting lists in pure Python on every query; for results-as-you-type that
costs too much at tens of thousands of articles. Here each (field, word) posting list is read
once per index generation into numpy arrays (doc numbers, BM25 weights), and queries made of
words, prefixes, AND and OR are answered with array intersections and unions. Anything else
(phrases, NOT) returns None and the caller uses Whoosh. Totals are exact.

Scoring is BM25 without length normalisation (b = 0): these fields are a few words long.
"""

from __future__ import annotations

import math

import numpy as np
from whoosh import query as wq
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.reading import IndexReader, TermNotFound

K1 = 1.2
MAX_CACHED_TERMS = 50_000
_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))

Postings = tuple[np.ndarray, np.ndarray]


class ShortFieldPostings:
    """Lazily loaded postings of one searcher's reader (one index generation)."""

    def __init__(self, reader: IndexReader) -> None:
        self.reader = reader
        self.doc_count = reader.doc_count_all()
        self._terms: dict[tuple[str, str], Postings] = {}

    def term(self, fieldname: str, text: str) -> Postings:
        key = (fieldname, text)
        cached = self._terms.get(key)
        if cached is None:
            if len(self._terms) >= MAX_CACHED_TERMS:
                self._terms.clear()
            cached = self._terms[key] = self._load(fieldname, text)
        return cached

    def _load(self, fieldname: str, text: str) -> Postings:
        id_parts: list[np.ndarray] = []
        tf_parts: list[np.ndarray] = []
        for leaf, offset in self.reader.leaf_readers():
            try:
                matcher = leaf.postings(fieldname, text)
            except TermNotFound:
                continue
            ids, tf = _read_postings(matcher)
            id_parts.append(ids + offset)
            tf_parts.append(tf)
        if not id_parts:
            return _EMPTY
        ids = np.concatenate(id_parts)
        tf = np.concatenate(tf_parts)
        if not len(ids):
            return _EMPTY
        df = len(ids)
        idf = math.log(1 + (self.doc_count - df + 0.5) / (df + 0.5))
        return ids, idf * tf * (K1 + 1) / (tf + K1)

    def evaluate(self, q: wq.Query) -> Postings | None:
        """(doc numbers ascending, scores) for a query of words, AND and OR; else None."""
        if isinstance(q, wq.Term):
            ids, scores = self.term(q.fieldname, q.text)
            return ids, scores * q.boost
        if isinstance(q, wq.And | wq.Or) and type(q) in (wq.And, wq.Or):
            parts = [self.evaluate(sub) for sub in q.subqueries]
            if any(part is None for part in parts):
                return None
            combined = _intersect(parts) if isinstance(q, wq.And) else _union(parts)
            return combined[0], combined[1] * q.boost
        return None


def _read_postings(matcher) -> Postings:
    """All (doc number, term frequency) of one segment's posting list.

    Whoosh's own codec keeps each block's ids and weights as arrays: copying a block at a
    time is far cheaper than stepping through it. Deleted documents may be included; the
    caller's visibility mask excludes them. Other matchers are stepped through.
    """
    while not isinstance(matcher, W3LeafMatcher) and hasattr(matcher, "child"):
        matcher = matcher.child
    ids: list = []
    weights: list = []
    if isinstance(matcher, W3LeafMatcher):
        while matcher.is_active():
            if matcher._ids is None:
                matcher._read_ids()
            if matcher._weights is None:
                matcher._read_weights()
            ids.extend(matcher._ids[matcher._i:matcher._blocklength])
            weights.extend(matcher._weights[matcher._i:matcher._blocklength])
            matcher._next_block()
    else:
        while matcher.is_active():
            ids.append(matcher.id())
            weights.append(matcher.weight())
            matcher.next()
    return np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float64)


def _union(parts: list[Postings]) -> Postings:
    if not parts:
        return _EMPTY
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=scores, minlength=len(unique))


def _intersect(parts: list[Postings]) -> Postings:
    if not parts:
        return _EMPTY
    parts = sorted(parts, key=lambda p: len(p[0]))
    ids, scores = parts[0]
    for other_ids, other_scores in parts[1:]:
        ids, mine, theirs = np.intersect1d(ids, other_ids, assume_unique=True,
                                           return_indices=True)
        scores = scores[mine] + other_scores[theirs]
        if not len(ids):
            break
    return ids, scores


def top(postings: Postings, allowed: np.ndarray, start: int, count: int
        ) -> tuple[list[tuple[int, float]], int]:
    """The [start, start+count) best allowed docs (score desc, doc number asc) and the total."""
    ids, scores = postings
    keep = allowed[ids]
    ids, scores = ids[keep], scores[keep]
    total = len(ids)
    end = min(start + count, total)
    if start >= end:
        return [], total
    order = np.lexsort((ids, -scores))[:end]
    return [(int(ids[i]), float(scores[i])) for i in order[start:end]], total
