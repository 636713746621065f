"""PostgreSQL search rows as ranking needs them (CI sets PORTAL_TEST_POSTGRES_URL)."""

import pytest
from sqlalchemy import text

from portal.extensions import db
from portal.search import Audience, reindex_all, search_articles

pytestmark = pytest.mark.parametrize("search_backend", ["postgres"], indirect=True)


def _storage(column: str) -> str:
    return db.session.scalar(text(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'fts_articles'::regclass"
        " AND attname = :column"), {"column": column})


def test_vectors_stay_inline_and_the_body_moves_out_of_line(make_article):
    """Ranking reads every matching row's vector: a long body must not push the row over the
    toast threshold and get the vector compressed with pglz (slow to read back)."""
    article = make_article("Invoices", " ".join(f"invoice line {n} paid" for n in range(400)))
    assert _storage("body") == "e" and _storage("tsv") == "m"
    compression = db.session.scalar(text(
        "SELECT pg_column_compression(tsv) FROM fts_articles WHERE article_id = :id"),
        {"id": article.id})
    assert compression in (None, "lz4")
    assert [h.article_id for h in search_articles("invoices", Audience.PUBLIC).hits] == [
        article.id]


def test_instant_results_follow_every_change_of_the_row(make_article):
    from portal.kb.models import Article, Visibility
    from portal.search import enqueue_article

    article = make_article("Refund a payment", "Refunds take five days.")

    def instant(audience=Audience.PUBLIC):
        return [h.article_id for h in search_articles("refu", audience, instant=True).hits]

    assert instant() == [article.id]
    db.session.get(Article, article.id).visibility = Visibility.INTERNAL
    enqueue_article(article.id)
    db.session.commit()
    assert instant() == [] and instant(Audience.AGENTS) == [article.id]
    db.session.delete(db.session.get(Article, article.id))
    enqueue_article(article.id)
    db.session.commit()
    assert instant(Audience.AGENTS) == []
    assert db.session.scalar(text("SELECT count(*) FROM fts_short")) == 0


def test_a_rebuild_leaves_statistics_for_the_planner(make_article):
    """And vacuums: otherwise the first searches after a rebuild check every new row's
    inserting transaction and write its hint bits (slower until autovacuum comes)."""
    make_article("Reset your password", "Open the sign-in page.")

    def vacuums() -> int:
        db.session.execute(text("SELECT pg_stat_clear_snapshot()"))
        return db.session.scalar(text(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'fts_articles'"))

    before = vacuums()
    db.session.commit()
    reindex_all()
    analysed = db.session.scalar(text(
        "SELECT count(*) FROM pg_stats WHERE tablename = 'fts_articles'"))
    assert analysed > 0
    assert vacuums() == before + 1


def _statements(during) -> list[str]:
    from sqlalchemy import event

    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if "change_feed" not in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        during()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def test_a_spelling_correction_is_asked_once_until_the_knowledge_base_changes(make_article):
    """A query with few results corrects its spelling on every visit: the answer is kept per
    process until the next change to the knowledge base, which may bring the word."""
    make_article("Connect the calendar", "Calendar sync with your account.")

    def search(words):
        return lambda: search_articles(words, Audience.PUBLIC)

    first = search_articles("calendr", Audience.PUBLIC)
    assert first.corrected_query == "calendar"
    assert not [s for s in _statements(search("calendr")) if "fts_vocabulary" in s]
    make_article("Calendr", "A product named Calendr.")
    again = search_articles("calendr", Audience.PUBLIC)
    assert again.corrected_query is None and again.total == 1


def test_known_words_are_not_compared_by_trigrams(make_article):
    """Only words the vocabulary lacks get trigram candidates (the same answers, less work)."""
    from portal.search import pg

    make_article("Refund a payment", "Refunds take five days.")
    assert pg._correct_spelling("refunds paymnt") == "refunds payment"
    assert pg._correct_spelling("refunds payment") is None
    assert pg._correct_spelling("zzzzqx") is None


def test_word_facts_are_asked_once_until_the_knowledge_base_changes(make_article):
    """What the vocabulary says of single words (spelling candidates, article counts) is
    kept per process: words seen since the last change cost no statement."""
    from portal.search import pg

    make_article("Connect the calendar", "Calendar sync with your account.")
    make_article("Calendar colours", "Pick a colour for each calendar.")

    def candidates(words):
        return pg.keyword_candidates(pg.parse(words, prefix_last=False), Audience.PUBLIC,
                                     None, 10, instant=False)

    first = candidates("calendar sync")
    assert len(first.ranked) == 2 and pg.word_facts().counts == {"calendar": 2, "sync": 1}
    again = _statements(lambda: candidates("sync calendar the"))  # "the": a new word
    assert len(again) == 1 and "fts_vocabulary" in again[0]
    assert pg.word_facts().counts["the"] == -1  # a stop word
    assert [s for s in _statements(lambda: candidates("calendar the"))
            if "fts_vocabulary" in s] == []
    assert candidates("calendar the").shares == candidates("calendar").shares

    assert pg._correct_spelling("calendr snyc") == "calendar sync"
    assert _statements(lambda: pg._spelling_candidates(["calendr", "Snyc"])) == []
    assert [c.word for c in pg._spelling_candidates(["calendr"])["calendr"]][:1] == [
        "calendar"]
    make_article("Calendr", "A product named Calendr, a calendar.")
    assert pg._spelling_candidates(["calendr"]) == {"calendr": []}  # now a known word
    assert candidates("calendar sync").ranked and pg.word_facts().counts["calendar"] == 3


def test_word_facts_follow_a_publish_through_another_process(app, make_article):
    """Another host's publish moves the change feed's version here, which drops this
    process's word facts: its word counts and spelling are read afresh (within the feed's
    delay of about a second)."""
    import subprocess
    import sys
    import textwrap
    import time
    from pathlib import Path

    from portal.search import pg

    make_article("Connect the calendar", "Calendar sync with your account.")
    assert pg._correct_spelling("calendr") == "calendar"
    pg.keyword_candidates(pg.parse("calendar", prefix_last=False), Audience.PUBLIC, None, 10,
                          instant=False)
    assert pg.word_facts().counts["calendar"] == 1
    root = Path(__file__).resolve().parents[2]
    other_host = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(root)!r})
        from tests.conftest import make_app
        from portal.extensions import db
        from portal.kb.models import ArticleStatus
        from portal.kb.services import ArticleInput, create_article
        app = make_app(Path({str(Path(app.instance_path) / "other-host")!r}),
                       DATABASE_URL={app.config["DATABASE_URL"]!r})
        with app.app_context():
            create_article(ArticleInput(title="Calendr calendar", body="Calendr, a calendar.",
                                        section_id={make_article.section.id}), None,
                           status=ArticleStatus.PUBLISHED)
            db.session.commit()
        """)
    published = subprocess.run([sys.executable, "-c", other_host], cwd=root,  # noqa: S603
                               capture_output=True, text=True, timeout=120)
    assert published.returncode == 0, published.stderr

    deadline = time.monotonic() + 5
    while pg._spelling_candidates(["calendr"]) != {"calendr": []}:
        assert time.monotonic() < deadline, "the other process's publish was not seen"
        time.sleep(0.05)
    pg.keyword_candidates(pg.parse("calendar", prefix_last=False), Audience.PUBLIC, None, 10,
                          instant=False)
    assert pg.word_facts().counts["calendar"] == 2
