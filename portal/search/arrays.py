"""Query evaluation on in-memory copies of the index's posting lists (numpy arrays).

Whoosh walks its posting lists in pure Python on every query, which costs tens to hundreds
of milliseconds at tens of thousands of articles. Here each (field, word) posting list is
read once per index generation into arrays (doc numbers, BM25 weights), and queries made of
words, expanded prefixes, AND and OR are answered with array intersections and unions, with
exact totals. Anything else (phrases, NOT) returns None and the caller uses Whoosh.

Scoring is BM25 per field (b = 0.75 for the body, whose length varies; none for the short
fields), multiplied by the query's field boosts and summed over fields and words.
"""

from __future__ import annotations

import math

import numpy as np
from whoosh import query as wq
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.reading import IndexReader, TermNotFound

K1 = 1.2
B = {"body": 0.75}  # length normalisation per field (short fields: none)
# Added per matched query word: more matched words always outrank a higher BM25 sum.
COORDINATION = 1000.0
# Cached postings are dropped when they hold more entries than this (~16 bytes each).
MAX_CACHED_ENTRIES = 5_000_000
_EMPTY = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))

Postings = tuple[np.ndarray, np.ndarray]


class ArrayPostings:
    """Scored postings of one searcher's reader (one index generation), built lazily from
    the per-segment cache below."""

    def __init__(self, reader: IndexReader) -> None:
        self.reader = reader
        self.doc_count = reader.doc_count_all()
        self._terms: dict[tuple[str, str], Postings] = {}
        self._entries = 0
        self._lengths: dict[str, tuple[np.ndarray, float]] = {}

    def term(self, fieldname: str, text: str) -> Postings:
        key = (fieldname, text)
        cached = self._terms.get(key)
        if cached is None:
            if self._entries >= MAX_CACHED_ENTRIES:
                self._terms.clear()
                self._entries = 0
            cached = self._terms[key] = self._load(fieldname, text)
            self._entries += len(cached[0])
        return cached

    def _field_lengths(self, fieldname: str) -> tuple[np.ndarray, float]:
        if fieldname not in self._lengths:
            parts = [_segment_lengths(leaf, fieldname)
                     for leaf, _offset in self.reader.leaf_readers()]
            lengths = np.concatenate(parts) if parts else np.empty(0)
            average = float(lengths.mean()) if len(lengths) else 1.0
            self._lengths[fieldname] = (lengths, average or 1.0)
        return self._lengths[fieldname]

    def _load(self, fieldname: str, text: str) -> Postings:
        id_parts: list[np.ndarray] = []
        tf_parts: list[np.ndarray] = []
        for leaf, offset in self.reader.leaf_readers():
            ids, tf = _segment_postings(leaf, fieldname, text)
            if len(ids):
                id_parts.append(ids + offset)
                tf_parts.append(tf)
        if not id_parts:
            return _EMPTY
        ids = np.concatenate(id_parts)
        tf = np.concatenate(tf_parts)
        df = len(ids)
        idf = math.log(1 + (self.doc_count - df + 0.5) / (df + 0.5))
        b = B.get(fieldname, 0.0)
        if b:
            lengths, average = self._field_lengths(fieldname)
            norm = K1 * (1 - b + b * lengths[ids] / average)
        else:
            norm = K1
        return ids, idf * tf * (K1 + 1) / (tf + norm)

    def evaluate(self, q: wq.Query) -> Postings | None:
        """(doc numbers ascending, scores) for a query of words, AND and OR; else None."""
        if isinstance(q, wq.Term):
            ids, scores = self.term(q.fieldname, q.text)
            return ids, scores * q.boost
        if isinstance(q, wq.And | wq.Or) and type(q) in (wq.And, wq.Or):
            parts = [self.evaluate(sub) for sub in q.subqueries]
            if any(part is None for part in parts):
                return None
            combined = _intersect(parts) if isinstance(q, wq.And) \
                else _union(parts, self.doc_count)
            return combined[0], combined[1] * q.boost
        return None


def evaluate_words(postings: ArrayPostings, q: wq.Query) -> Postings | None:
    """Like `evaluate`, but an OR of several words ranks articles having more of the words
    first (all words before some words), then by score."""
    if type(q) is wq.Or and len(q.subqueries) > 1 and not any(
            isinstance(sub, wq.Term) for sub in q.subqueries):
        parts = [postings.evaluate(sub) for sub in q.subqueries]
        if any(part is None for part in parts):
            return None
        ids, scores = _union(parts, postings.doc_count)
        matched_words = np.bincount(np.concatenate([p[0] for p in parts]),
                                    minlength=postings.doc_count)[ids]
        return ids, matched_words * COORDINATION + scores
    return postings.evaluate(q)


# Raw postings per segment. Segments never change once written (deletions live apart and
# are excluded by the visibility mask), so a commit that adds a small segment keeps
# everything read from the big ones: only the new segment is read.
_segment_cache: dict[tuple, tuple[np.ndarray, np.ndarray] | np.ndarray] = {}
_segment_cache_entries = 0


def _cached(key: tuple, load):
    global _segment_cache_entries
    if key[1] is None:  # a reader without a segment (an empty index): nothing to keep
        return load()
    value = _segment_cache.get(key)
    if value is None:
        if _segment_cache_entries >= MAX_CACHED_ENTRIES:
            _segment_cache.clear()
            _segment_cache_entries = 0
        value = _segment_cache[key] = load()
        first = value[0] if isinstance(value, tuple) else value
        _segment_cache_entries += len(first)
    return value


def _segment_key(leaf) -> str | None:
    segment = leaf.segment()
    return segment.segment_id() if segment is not None else None


def _segment_postings(leaf, fieldname: str, text: str) -> tuple[np.ndarray, np.ndarray]:
    def load():
        try:
            return _read_postings(leaf.postings(fieldname, text))
        except TermNotFound:
            return _EMPTY

    return _cached(("postings", _segment_key(leaf), fieldname, text), load)


def _segment_lengths(leaf, fieldname: str) -> np.ndarray:
    def load():
        count = leaf.doc_count_all()
        return np.fromiter((leaf.doc_field_length(n, fieldname, 0) for n in range(count)),
                           dtype=np.float64, count=count)

    return _cached(("lengths", _segment_key(leaf), fieldname), load)


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


def _union(parts: list[Postings], size: int) -> Postings:
    """Docs in any part (ascending), scores summed in the parts' order. Counting into arrays
    of `size` (the reader's doc count) costs O(size + entries); sorting the concatenated
    entries (np.unique) cost O(entries log entries), most of a query on a large index."""
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    unique = np.flatnonzero(np.bincount(ids, minlength=size))
    return unique, np.bincount(ids, weights=scores, minlength=size)[unique]


def _intersect(parts: list[Postings]) -> Postings:
    """Docs in every part (ascending), scores summed; the shortest list is looked up in the
    others by binary search (each list is ascending)."""
    if not parts:
        return _EMPTY
    parts = sorted(parts, key=lambda p: len(p[0]))
    ids, scores = parts[0]
    for other_ids, other_scores in parts[1:]:
        if not len(ids) or not len(other_ids):
            return _EMPTY
        at = np.minimum(np.searchsorted(other_ids, ids), len(other_ids) - 1)
        found = other_ids[at] == ids
        ids, scores = ids[found], scores[found] + other_scores[at[found]]
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
    if end < total:  # sort only the docs scoring at least the end-th best (ties included)
        threshold = np.partition(scores, total - end)[total - end]
        best = np.flatnonzero(scores >= threshold)
        ids, scores = ids[best], scores[best]
    order = np.lexsort((ids, -scores))[:end]
    return [(int(ids[i]), float(scores[i])) for i in order[start:end]], total
