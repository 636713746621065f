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
    make_article("Reset your password", "Open the sign-in page.")
    db.session.execute(text("SELECT pg_stat_clear_snapshot()"))
    reindex_all()
    analysed = db.session.scalar(text(
        "SELECT count(*) FROM pg_stats WHERE tablename = 'fts_articles'"))
    assert analysed > 0
