"""Building the index in bounded memory, and the posting files written after each commit.

A rebuild that spills its sorted postings to disk many times must write the same index as one
that holds them all in memory. The posting files (arrays.py) must give every word exactly the
postings Whoosh reads, follow each publish with files for the new segment, and lose those of
segments merged away.
"""

import random
import shutil

import pytest

from portal.extensions import db
from portal.search import Audience, arrays, queue, reindex_all, search_articles
from portal.search.arrays import POSTING_FIELDS, ArrayPostings, _read_postings
from portal.search.index import store

WORDS = ["printer", "password", "invoice", "refund", "slack", "webhook", "export", "calendar",
         "token", "upload", "offline", "cache", "browser", "crash", "timeout", "sync", "archive",
         "label", "budget", "forecast"]


@pytest.fixture
def articles(make_article):
    rng = random.Random(3)
    made = []
    for n in range(30):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 160)))
        title = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} {n}"
        made.append(make_article(title, body, labels=rng.choice(WORDS), index=False))
    db.session.commit()
    return made


def _snapshot():
    """Every stored document and every posting (word, doc, weight, value) of every field."""
    with store().index().reader() as reader:
        stored = [reader.stored_fields(n) for n in range(reader.doc_count_all())]
        postings = {}
        for fieldname in reader.schema.names():
            if not reader.schema[fieldname].indexed:
                continue
            for word in reader.lexicon(fieldname):
                matcher = reader.postings(fieldname, word)
                found = []
                while matcher.is_active():
                    found.append((matcher.id(), matcher.weight(), matcher.value()))
                    matcher.next()
                postings[(fieldname, word)] = found
    return stored, postings


def test_a_rebuild_in_little_memory_writes_the_same_index(app, articles, monkeypatch):
    reindex_all()
    in_memory = _snapshot()
    runs = []
    monkeypatch.setattr(queue, "REINDEX_MEMORY_MB", 0.05)  # a run on disk every ~50 kB
    from whoosh.writing import PostingPool

    original_save = PostingPool.save
    monkeypatch.setattr(PostingPool, "save",
                        lambda pool: (runs.append(len(pool.current)), original_save(pool)))
    reindex_all()
    assert len(runs) >= 5  # the postings really went through several runs on disk
    assert _snapshot() == in_memory


def _folders():
    folder = store().path / arrays.POSTINGS_FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _segment_ids():
    with store().index().reader() as reader:
        return sorted(leaf.segment().segment_id() for leaf, _offset in reader.leaf_readers())


def test_posting_files_give_whoosh_s_postings_and_follow_the_index(app, articles, run_jobs,
                                                                     make_article):
    run_jobs()  # the index job writes the new segment's files after its commit
    assert _folders() == _segment_ids() != []
    reader = store().searcher().reader()
    for leaf, _offset in reader.leaf_readers():
        files = arrays._segment_files(leaf)
        assert files is not None
        for fieldname in POSTING_FIELDS:
            for word in leaf.lexicon(fieldname):
                ours = files.postings(fieldname, word.decode())
                whoosh = _read_postings(leaf.postings(fieldname, word))
                assert ours[0].tolist() == whoosh[0].tolist()
                assert ours[1].tolist() == whoosh[1].tolist()
        assert len(files.postings("body", "nowhere")[0]) == 0
        for fieldname, lengths in files.lengths.items():
            assert lengths.tolist() == arrays._read_lengths(leaf, fieldname).tolist()
    # Scored postings (what ranking reads) are the same with the files and without them.
    with_files = ArrayPostings(reader)
    scored = {(f, w): with_files.term(f, w) for f in POSTING_FIELDS for w in WORDS}
    shutil.rmtree(store().path / arrays.POSTINGS_FOLDER)
    arrays._posting_folders.clear()  # as a process that never saw them
    without = ArrayPostings(reader)
    for (fieldname, word), (ids, scores) in scored.items():
        assert without.term(fieldname, word)[0].tolist() == ids.tolist()
        assert without.term(fieldname, word)[1].tolist() == scores.tolist()

    # A publish adds a segment: its files follow, and it is found.
    reindex_all()
    assert _folders() == _segment_ids()
    latest = make_article("Kerberos ticket renewal", "Renew the kerberos ticket with kinit.")
    assert _folders() == _segment_ids() and len(_segment_ids()) == 2
    found = search_articles("kerberos", Audience.PUBLIC)
    assert [hit.article_id for hit in found.hits] == [latest.id]
    # A full rebuild merges everything into one segment: the others' files go.
    reindex_all()
    assert _folders() == _segment_ids() and len(_segment_ids()) == 1
    found = search_articles("kerberos", Audience.PUBLIC)
    assert [hit.article_id for hit in found.hits] == [latest.id]


def test_segments_are_separate_files_read_in_place(app, articles, run_jobs, make_article):
    """A compound segment is copied into each reader's memory file by file (~300 MB per
    worker and per new searcher at 100,000 articles); separate files are read in place."""
    reindex_all()
    make_article("Kerberos ticket renewal", "Renew the kerberos ticket with kinit.")
    with store().index().reader() as reader:
        segments = [leaf.segment() for leaf, _offset in reader.leaf_readers()]
    assert len(segments) == 2
    assert not any(segment.is_compound() for segment in segments)
