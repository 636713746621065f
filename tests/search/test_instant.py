"""Instant results: in-memory short-field postings must agree with the index."""

import pytest

from portal.extensions import db
from portal.kb.models import Visibility
from portal.kb.services import ArticleInput, update_article
from portal.search import Audience, search_articles

# The same tests hold for Whoosh (SQLite) and for PostgreSQL full-text search.
pytestmark = pytest.mark.parametrize("search_backend", ["whoosh", "postgres"], indirect=True)


def instant_titles(text, audience=Audience.PUBLIC):
    return [h.title for h in search_articles(text, audience, instant=True).hits]


def test_all_words_first_then_some(make_article):
    make_article("Slack notifications", "x")
    make_article("Slack and invoice emails", "x")
    make_article("Invoice numbering", "x")
    titles = instant_titles("slack invoic")
    assert titles[0] == "Slack and invoice emails"
    assert set(titles[1:]) == {"Invoice numbering", "Slack notifications"}
    assert search_articles("slack invoic", Audience.PUBLIC, instant=True).total == 3


def test_updates_and_deletions_across_segments(make_article, agent, run_jobs):
    article = make_article("Calendar sync", "x")
    for n in range(3):  # several commits: several segments, the old versions deleted
        make_article(f"Other topic {n}", "x")
        update_article(article, ArticleInput(title=f"Calendar feeds {n}", body="x",
                                             section_id=article.section_id), agent,
                       article.version)
        db.session.commit()
        run_jobs()
    assert instant_titles("calendar") == ["Calendar feeds 2"]
    assert instant_titles("sync") == []


def test_visibility_and_phrase_fallback(make_article):
    make_article("Refund rules", "x", visibility=Visibility.INTERNAL)
    public = make_article("Refund a payment", "x")
    assert instant_titles("refun") == [public.title]
    assert set(instant_titles("refun", Audience.AGENTS)) == {"Refund rules", public.title}
    assert instant_titles('"refund a"') == [public.title]  # phrases go through Whoosh
