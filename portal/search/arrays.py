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

import json
import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
from flask import has_app_context
from whoosh import query as wq
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.reading import IndexReader, TermNotFound

from portal.search.index import store

log = logging.getLogger(__name__)

K1 = 1.2
B = {"body": 0.75}  # length normalisation per field (short fields: none)
# Added per matched query word: more matched words always outrank a higher BM25 sum.
COORDINATION = 1000.0
# Cached postings are dropped when they hold more entries than this (~16 bytes each): with
# the posting files (below) a word's postings are a slice of a mapped file, cheap to score
# again, so a worker keeps ~16 MB of them rather than 80 MB.
MAX_CACHED_ENTRIES = 1_000_000
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
        every = np.concatenate([p[0] for p in parts])
        if _few(len(every), postings.doc_count):  # ids are these entries' distinct values
            matched_words = np.unique(every, return_counts=True)[1]
        else:
            matched_words = np.bincount(every, minlength=postings.doc_count)[ids]
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
    files = _segment_files(leaf)
    if files is not None:
        found = files.postings(fieldname, text)
        if found is not None:
            return found

    def load():
        try:
            return _read_postings(leaf.postings(fieldname, text))
        except TermNotFound:
            return _EMPTY

    return _cached(("postings", _segment_key(leaf), fieldname, text), load)


def _segment_lengths(leaf, fieldname: str) -> np.ndarray:
    files = _segment_files(leaf)
    if files is not None and fieldname in files.lengths:
        return files.lengths[fieldname]

    def load():
        return _read_lengths(leaf, fieldname)

    return _cached(("lengths", _segment_key(leaf), fieldname), load)


def _read_lengths(leaf, fieldname: str) -> np.ndarray:
    count = leaf.doc_count_all()
    return np.fromiter((leaf.doc_field_length(n, fieldname, 0) for n in range(count)),
                       dtype=np.float64, count=count)


# --- posting files: each segment's postings as flat arrays, written once, mapped by all ----
# Reading a word's postings through Whoosh unpickles every block of it, with the character
# offsets the body keeps for snippets: ~1 us per entry, so a common word's first query at
# 100,000 articles cost tens of milliseconds, in every worker, after every restart. Once a
# segment is written (segments never change), its postings of the searched fields go to
# flat files read by memory mapping: a lookup is a binary search and a slice, and the
# host's processes share one copy in the page cache. A segment without files yet (the job
# writes them after each commit) is read through Whoosh as before; the values are the same.
POSTINGS_FOLDER = "postings"
POSTING_FIELDS = ("body", "labels", "section", "title")  # schema.SEARCH_FIELDS, sorted
MAX_KEY_BYTES = 64  # longer words stay out of the files (read through Whoosh)
_FILES_VERSION = "1"
_RECHECK_SECONDS = 2.0


def mapped_array(path: Path, dtype) -> np.ndarray:
    """The file's values, mapped read-only (shared by the host's processes through the page
    cache). A plain array over the mapping: indexing a np.memmap costs ~0.4 ms a call."""
    return np.asarray(np.memmap(path, dtype=dtype, mode="r")) if path.stat().st_size \
        else np.empty(0, dtype=dtype)


class SegmentFiles:
    """One segment's posting files, memory-mapped (see above)."""

    def __init__(self, folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        self.keys = np.load(folder / "keys.npy", mmap_mode="r")
        self.starts = mapped_array(folder / "starts.bin", np.int64)
        self.ids = mapped_array(folder / "ids.bin", np.int32)
        self.tf = mapped_array(folder / "tf.bin", np.dtype(meta["tf"]))
        self.lengths = {name: mapped_array(folder / f"lengths-{name}.bin", np.float64)
                        for name in B}

    def postings(self, fieldname: str, text: str | bytes) -> Postings | None:
        """(ids, tf) as Whoosh reads them, or None when the files cannot say."""
        if fieldname not in POSTING_FIELDS:
            return None
        key = _key(fieldname, text)
        if len(key) > MAX_KEY_BYTES:
            return None
        at = int(np.searchsorted(self.keys, key))
        if at >= len(self.keys) or self.keys[at] != key:
            return _EMPTY
        start, end = int(self.starts[at]), int(self.starts[at + 1])
        return (self.ids[start:end].astype(np.int64),
                self.tf[start:end].astype(np.float64))


def _key(fieldname: str, text: str | bytes) -> bytes:
    word = text.encode("utf-8") if isinstance(text, str) else text
    return fieldname.encode("ascii") + b"\x00" + word


class SegmentFolders:
    """What this process opened of each index segment's folder under `name` (the posting
    files here, the spelling files in spelling.py): opened once by `opener`; a segment
    without its folder (not written yet) is looked for again after _RECHECK_SECONDS."""

    def __init__(self, name: str, opener, what: str, errors: tuple = (OSError, ValueError)):
        self.name, self.opener, self.what, self.errors = name, opener, what, errors
        self.opened: dict[str, tuple[object | None, float]] = {}
        self.lock = threading.Lock()

    def open(self, leaf):
        """The segment's opened files, or None."""
        segment_id = _segment_key(leaf)
        if segment_id is None or not has_app_context():
            return None
        folder = Path(store().path) / self.name / segment_id
        known = self.opened.get(str(folder))
        now = time.monotonic()
        if known is not None and (known[0] is not None or now - known[1] < _RECHECK_SECONDS):
            return known[0]
        try:
            found = self.opener(folder) if (folder / "meta.json").exists() else None
        except self.errors:  # removed meanwhile (a merged segment), or damaged
            log.warning("%s of segment %s unreadable", self.what, segment_id, exc_info=True)
            found = None
        with self.lock:
            self.opened[str(folder)] = (found, now)
        return found

    def forget(self, folder: Path) -> None:
        """Look for `folder` again at its next use (this process just wrote it)."""
        with self.lock:
            self.opened.pop(str(folder), None)

    def clear(self) -> None:
        with self.lock:
            self.opened.clear()


_posting_folders = SegmentFolders(POSTINGS_FOLDER, SegmentFiles, "posting files")


def _segment_files(leaf) -> SegmentFiles | None:
    """The segment's posting files, or None (not written yet: checked again shortly)."""
    return _posting_folders.open(leaf)


def _postings_folder(index_path: Path) -> Path:
    return Path(index_path) / POSTINGS_FOLDER


def write_posting_files(index_store) -> int:
    """Write the posting files of the index's segments that have none, and remove those of
    segments gone (merged away). Returns how many segments were written. Called after index
    commits, outside requests; a failure only leaves Whoosh to read those segments."""
    return sync_segment_folders(index_store, _postings_folder(index_store.path),
                                _write_segment_files, "posting files")


def sync_segment_folders(index_store, folder: Path, write_segment, what: str) -> int:
    """Give each live segment of the index its folder under `folder` (`write_segment(leaf,
    folder, segment_id)` writes a missing one), and remove the folders of segments gone and
    the partial folders a killed writer left. Returns how many folders were written; a
    failure is logged, and readers fall back to Whoosh for the segments without files."""
    written = 0
    try:
        with index_store.index().reader() as reader:
            live = set()
            for leaf, _offset in reader.leaf_readers():
                segment_id = _segment_key(leaf)
                if segment_id is None:
                    continue
                live.add(segment_id)
                if not (folder / segment_id / "meta.json").exists():
                    write_segment(leaf, folder, segment_id)
                    written += 1
        for other in folder.iterdir() if folder.exists() else ():
            if other.name not in live and not other.name.startswith("."):
                shutil.rmtree(other, ignore_errors=True)
            elif other.name.startswith(".") and time.time() - other.stat().st_mtime > 3600:
                shutil.rmtree(other, ignore_errors=True)  # left by a killed writer
    except Exception:
        log.exception("could not write the %s (searches read Whoosh instead)", what)
    return written


def _write_segment_files(leaf, folder: Path, segment_id: str) -> None:
    """One pass over the segment's terms of POSTING_FIELDS; entries are streamed to the
    files (bounded memory), keys and offsets kept until the end (one per word)."""
    partial = folder / f".{segment_id}.{os.getpid()}.{threading.get_ident()}"
    partial.mkdir(parents=True, exist_ok=True)
    keys: list[bytes] = []
    starts = [0]
    exact32 = True
    with open(partial / "ids.bin", "wb") as ids_file, \
            open(partial / "tf64.bin", "wb") as tf_file:
        for fieldname in POSTING_FIELDS:
            if fieldname not in leaf.schema:
                continue
            for word in leaf.lexicon(fieldname):
                key = _key(fieldname, word)
                if len(key) > MAX_KEY_BYTES:
                    continue
                ids, tf = _read_postings(leaf.postings(fieldname, word))
                ids_file.write(ids.astype(np.int32).tobytes())
                tf_file.write(tf.tobytes())
                exact32 = exact32 and bool(np.array_equal(tf.astype(np.float32), tf))
                keys.append(key)
                starts.append(starts[-1] + len(ids))
    tf64 = np.memmap(partial / "tf64.bin", dtype=np.float64, mode="r") \
        if starts[-1] else np.empty(0)
    if exact32:  # term frequencies are whole numbers: float32 holds them exactly
        with open(partial / "tf.bin", "wb") as out:
            for begin in range(0, len(tf64), 1 << 20):
                out.write(np.asarray(tf64[begin:begin + (1 << 20)], dtype=np.float32).tobytes())
        del tf64
        (partial / "tf64.bin").unlink()
    else:
        del tf64
        (partial / "tf64.bin").rename(partial / "tf.bin")
    ordered = np.array(keys, dtype=f"S{MAX_KEY_BYTES}")
    if len(ordered) > 1 and not bool(np.all(ordered[1:] > ordered[:-1])):
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(f"segment {segment_id}: words not in byte order")
    np.save(partial / "keys.npy", ordered)
    np.asarray(starts, dtype=np.int64).tofile(partial / "starts.bin")
    for fieldname in B:
        _read_lengths(leaf, fieldname).tofile(partial / f"lengths-{fieldname}.bin")
    (partial / "meta.json").write_text(json.dumps(
        {"version": _FILES_VERSION, "tf": "float32" if exact32 else "float64"}))
    try:
        partial.rename(folder / segment_id)
    except OSError:  # another process wrote them first
        shutil.rmtree(partial, ignore_errors=True)


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
    entries (np.unique) O(entries log entries): the first for common words on a large
    index, the second when the entries are few (a rare word at 100,000 articles: 13 us
    against 1.4 ms for three arrays of every document). Both add each document's scores in
    the same order, so the sums are the same to the last bit."""
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    if _few(len(ids), size):
        unique, inverse = np.unique(ids, return_inverse=True)
        return unique, np.bincount(inverse, weights=scores, minlength=len(unique))
    unique = np.flatnonzero(np.bincount(ids, minlength=size))
    return unique, np.bincount(ids, weights=scores, minlength=size)[unique]


# Fewer entries than 1/SORT_BELOW of the documents: sorting them beats counting into arrays
# of every document (measured crossover at 100,000 documents: ~5,000 entries).
SORT_BELOW = 20


def _few(entries: int, size: int) -> bool:
    return entries * SORT_BELOW < size


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
