"""The words of the `spell` field per index segment, as flat files every process maps, and
the spelling candidates of a word read from them.

Whoosh finds the words one typing slip away from a misspelt word by walking a Levenshtein
automaton over its word list (or, on an index of several segments, by computing an edit
distance in Python for every word with the same first letter): 2-6 ms per new misspelt word
at 20,000 articles, most of a slow suggestion's time (a question about wedding cakes has
several words no article uses). Here the candidates are generated instead (each deletion,
substitution by a letter the vocabulary uses, insertion and swap; a few hundred strings) and
looked up by binary search in each segment's sorted word list: well under a millisecond, and
the same words, document frequencies and collection frequencies Whoosh reports.

Segments never change once written, so their files are written once, after the index commit
that made them (`write_vocabulary_files`, beside the posting files of arrays.py); a segment
without files yet is answered through Whoosh.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from whoosh.reading import SegmentReader

from portal.search.arrays import SegmentFolders, mapped_array, sync_segment_folders

log = logging.getLogger(__name__)

FIELD = "spell"
FOLDER = "spelling"
MAX_WORD_BYTES = 64  # longer words stay out of the files (their words are read by Whoosh)
_VERSION = "1"
# Whoosh's corrector returns at most this many words one slip away, the most frequent first.
SUGGESTIONS = 25


class SegmentWords:
    """One segment's `spell` words (sorted bytes), document and collection frequencies."""

    def __init__(self, folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        self.alphabet: str = meta["alphabet"]
        self.doc_frequency = mapped_array(folder / "df.bin", np.int64)
        self.frequency = mapped_array(folder / "frequency.bin", np.float64)
        self.words = np.asarray(np.load(folder / "words.npy", mmap_mode="r")) \
            if len(self.doc_frequency) \
            else np.empty(0, dtype=f"S{MAX_WORD_BYTES}")

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document frequency, frequency) of each key; 0 where the segment lacks it."""
        if not len(self.words):
            return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys))
        at = np.minimum(np.searchsorted(self.words, keys), len(self.words) - 1)
        found = self.words[at] == keys
        return (np.where(found, self.doc_frequency[at], 0),
                np.where(found, self.frequency[at], 0.0))


@dataclass(frozen=True)
class Candidates:
    """The close words Whoosh's corrector would suggest, and the swapped words, in the
    vocabulary, with their document frequencies."""

    suggested: list[str]
    swapped: list[str]
    doc_frequency: dict[str, int]


def candidates(reader, word: str) -> Candidates | None:
    """What `reader.corrector(FIELD).suggest(word, limit=SUGGESTIONS, maxdist=1, prefix=1)`
    returns (as a set), and which of `word`'s neighbour swaps are indexed words; None when a
    segment has no files yet or the word is too long for them (the caller asks Whoosh).

    Whoosh's own rules, reproduced: the first letter is kept; a single segment's automaton
    allows one letter added, dropped or changed after it, and an index of several segments
    (plain Damerau-Levenshtein distance) also two neighbours swapped after it; the
    SUGGESTIONS most frequent win (equal frequencies: the larger word)."""
    if len(word) < 2 or len(word.encode("utf-8")) + 4 > MAX_WORD_BYTES:
        return None
    segments = []
    for leaf, _offset in reader.leaf_readers():
        found = _folders.open(leaf)
        if found is None:
            return None
        segments.append(found)
    if not segments:
        return None
    alphabet = sorted(set().union(*(s.alphabet for s in segments)))
    first, rest = word[0], word[1:]
    close: set[str] = set()
    for i in range(len(rest)):
        close.add(first + rest[:i] + rest[i + 1:])
        head, tail = first + rest[:i], rest[i + 1:]
        close.update(head + letter + tail for letter in alphabet)
    for i in range(len(rest) + 1):
        head, tail = first + rest[:i], rest[i:]
        close.update(head + letter + tail for letter in alphabet)
    swaps = {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}
    swaps.discard(word)
    if not isinstance(reader, SegmentReader):  # Damerau-Levenshtein: swaps after the first
        close.update(s for s in swaps if s[0] == first)
    close.discard(word)
    ordered = sorted(close | swaps)
    keys = np.array([w.encode("utf-8") for w in ordered], dtype=f"S{MAX_WORD_BYTES}")
    doc_frequency = np.zeros(len(keys), dtype=np.int64)
    frequency = np.zeros(len(keys))
    for segment in segments:
        df, freq = segment.lookup(keys)
        doc_frequency += df
        frequency += freq
    known = {w: (int(df), float(f)) for w, df, f in zip(ordered, doc_frequency, frequency,
                                                       strict=True) if df}
    scored = [(0 - (1 + (1.0 / (known[w][1] or 1) * 0.5)), w) for w in close if w in known]
    suggested = [w for _score, w in heapq.nlargest(SUGGESTIONS, scored)]
    return Candidates(suggested=suggested, swapped=[w for w in swaps if w in known],
                      doc_frequency={w: df for w, (df, _f) in known.items()})


# --- the files ------------------------------------------------------------------------------
_folders = SegmentFolders(FOLDER, SegmentWords, "spelling files",
                          errors=(OSError, ValueError, KeyError))


def write_vocabulary_files(index_store) -> int:
    """Write the word files of the index's segments that have none, and remove those of
    segments gone. Returns how many were written. Called after index commits, outside
    requests; a failure only leaves Whoosh to find those segments' corrections."""
    return sync_segment_folders(index_store, Path(index_store.path) / FOLDER, _write_segment,
                                "spelling files")


def _write_segment(leaf, folder: Path, segment_id: str) -> None:
    partial = folder / f".{segment_id}.{os.getpid()}.{threading.get_ident()}"
    partial.mkdir(parents=True, exist_ok=True)
    words: list[bytes] = []
    doc_frequency: list[int] = []
    frequency: list[float] = []
    letters: set[str] = set()
    if FIELD in leaf.schema:
        for text, info in leaf.iter_field(FIELD):
            word = text if isinstance(text, bytes) else text.encode("utf-8")
            if len(word) > MAX_WORD_BYTES:
                continue
            words.append(word)
            doc_frequency.append(info.doc_frequency())
            frequency.append(info.weight())
            letters.update(word.decode("utf-8"))
    ordered = np.array(words, dtype=f"S{MAX_WORD_BYTES}")
    if len(ordered) > 1 and not bool(np.all(ordered[1:] > ordered[:-1])):
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(f"segment {segment_id}: words not in byte order")
    np.save(partial / "words.npy", ordered)
    np.asarray(doc_frequency, dtype=np.int64).tofile(partial / "df.bin")
    np.asarray(frequency, dtype=np.float64).tofile(partial / "frequency.bin")
    (partial / "meta.json").write_text(json.dumps(
        {"version": _VERSION, "alphabet": "".join(sorted(letters))}))
    try:
        partial.rename(folder / segment_id)
    except OSError:  # another process wrote them first
        shutil.rmtree(partial, ignore_errors=True)
    _folders.forget(folder / segment_id)  # used here at once (elsewhere within seconds)
