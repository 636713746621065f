"""Spelling candidates read from the mapped word files (spelling.py) are exactly Whoosh's:
the same close words (its corrector's at most 25, the most frequent first), the same swapped
words and document frequencies, so every correction stays what it was, on an index of one
segment (Whoosh's automaton) and of several (its Damerau-Levenshtein scan)."""

import random
import shutil

import pytest

from portal.search import spelling
from portal.search.index import store
from portal.search.service import _correct_word, corrections

LETTERS = "abcdeéilmnorstu"


# Every "s" + two letters: "sa" is then one letter away from 30 words, more than the 25
# Whoosh's corrector keeps (the most frequent; equal frequencies: the larger word).
DENSE = [f"s{x}{y}" for x in LETTERS for y in LETTERS]
CROWDED = [f"s{x}" for x in LETTERS]


def _vocabulary(rng: random.Random, count: int) -> list[str]:
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 9))))
    return sorted(words - set(CROWDED))


def _typos(rng: random.Random, vocabulary: list[str], count: int) -> set[str]:
    typos = {"aa", "ab", "ea", "xyz", "éte", *CROWDED}
    while len(typos) < count:
        word = rng.choice(vocabulary)
        for _ in range(rng.choice((1, 1, 2))):
            at = rng.randrange(len(word))
            edit = rng.choice("dsit")
            if edit == "d" and len(word) > 2:
                word = word[:at] + word[at + 1:]
            elif edit == "s":
                word = word[:at] + rng.choice(LETTERS + "xz") + word[at + 1:]
            elif edit == "i":
                word = word[:at] + rng.choice(LETTERS + "xz") + word[at:]
            elif at < len(word) - 1:
                word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
        typos.add(word)
    return typos


def _index_words(segments: int, seed: int) -> list[str]:
    """Documents holding only `spell` words (a few common, most rare, some repeated),
    committed as `segments` segments (not merged)."""
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng, 400)
    ix = store().index()
    number = 0
    for _ in range(segments):
        writer = ix.writer()
        for _ in range(60):
            number += 1
            words = rng.sample(vocabulary, 12) + rng.sample(vocabulary[:40], 3)
            writer.add_document(id=str(number), spell=" ".join(words))
        dense = [w for w in DENSE for _ in range(rng.randint(1, 3))]
        writer.add_document(id=f"dense-{number}", spell=" ".join(dense))
        writer.commit(merge=False)
    return vocabulary


def _whoosh_close_words(searcher, word: str) -> set[str]:
    reader = searcher.reader()
    close = set(searcher.corrector("spell").suggest(word, limit=25, maxdist=1, prefix=1))
    for i in range(len(word) - 1):
        swapped = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        if swapped != word and reader.doc_frequency("spell", swapped):
            close.add(swapped)
    return close


def _forget_files() -> None:
    shutil.rmtree(store().path / spelling.FOLDER, ignore_errors=True)
    spelling._folders.clear()


@pytest.mark.parametrize(("segments", "reader_kind"), [(1, "SegmentReader"),
                                                       (3, "MultiReader")])
@pytest.mark.parametrize("seed", [1, 2])
def test_candidates_from_the_files_are_whoosh_s(app, segments, reader_kind, seed):
    vocabulary = _index_words(segments, seed)
    assert spelling.write_vocabulary_files(store()) == segments
    searcher = store().searcher()
    reader = searcher.reader()
    assert type(reader).__name__ == reader_kind
    many = 0
    for word in sorted(_typos(random.Random(seed), vocabulary, 400)):
        if reader.doc_frequency("spell", word):
            continue
        found = spelling.candidates(reader, word)
        assert found is not None
        ours = {*found.suggested, *found.swapped}
        assert ours == _whoosh_close_words(searcher, word), word
        assert all(found.doc_frequency[w] == reader.doc_frequency("spell", w) for w in ours)
        many += len(found.suggested) == spelling.SUGGESTIONS
    assert many  # short words: more than 25 close words, the corrector's limit was exercised


def test_a_correction_is_the_same_with_and_without_the_files(app):
    vocabulary = _index_words(2, 5)
    typos = sorted(_typos(random.Random(5), vocabulary, 150))
    searcher = store().searcher()
    _forget_files()
    assert spelling.candidates(searcher.reader(), typos[0]) is None  # Whoosh answers
    through_whoosh = {word: _correct_word(searcher, word) for word in typos}
    assert spelling.write_vocabulary_files(store()) == 2
    assert spelling.candidates(searcher.reader(), typos[0]) is not None
    assert {word: _correct_word(searcher, word) for word in typos} == through_whoosh
    assert sum(fixed is not None for fixed in through_whoosh.values()) > 50


def test_publishing_writes_the_files_and_corrections_use_them(app, make_article):
    make_article("How do I generate random numbers?", "Use the random module.")
    folder = store().path / spelling.FOLDER
    assert [p.name for p in folder.iterdir()] == [
        leaf.segment().segment_id() for leaf, _o in store().searcher().reader().leaf_readers()]
    assert spelling.candidates(store().searcher().reader(), "ramdom") is not None
    assert corrections(store(), "ramdom nubmers") == {"ramdom": "random", "nubmers": "numbers"}
    make_article("Why is there no goto?", "Structured code does without it.")
    assert corrections(store(), "structred") == {"structred": "structured"}
    live = {leaf.segment().segment_id()
            for leaf, _o in store().searcher().reader().leaf_readers()}
    assert {p.name for p in folder.iterdir()} == live  # merged-away segments' files removed
