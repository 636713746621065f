"""A request looks at the index folder once, and still sees what was published before it."""

import re

from whoosh.searching import Searcher

from portal.search import Audience, process_index_queue, search_articles, suggest_articles
from portal.search.documents import article_document
from portal.search.index import IndexStore, store


def titles(query):
    return [h.title for h in search_articles(query, Audience.PUBLIC).hits]


def count_disk_checks(monkeypatch) -> list[int]:
    """How often Whoosh is asked whether the open searcher is still the newest."""
    calls = [0]
    original = Searcher.up_to_date

    def counted(self):
        calls[0] += 1
        return original(self)

    monkeypatch.setattr(Searcher, "up_to_date", counted)
    return calls


def test_one_request_checks_the_index_folder_once(app, make_article, monkeypatch):
    make_article("Reset your password", "Open the sign-in page and choose reset password.")
    make_article("Printer offline", "Turn the printer off and on again.")
    with app.test_request_context():
        titles("password")  # this thread's searcher opened
    checks = count_disk_checks(monkeypatch)
    with app.test_request_context():
        assert titles("reset password") == ["Reset your password"]
        suggest_articles("my printer is offline after the update", Audience.PUBLIC)
        titles("printer")
    assert checks[0] == 1
    with app.test_request_context():
        titles("printer")
    assert checks[0] == 2  # and again in the next request


def test_next_request_sees_what_another_process_indexed(app, make_article):
    make_article("Printer offline", "Turn the printer off and on again.")
    article = make_article("Refund a payment", "Refunds take five days.", index=False)
    with app.test_request_context():
        assert titles("refund") == []
        # Another process (its own store) indexes the article while this request runs ...
        with IndexStore(app.config["INDEX_DIR"]).writer(timeout=5) as writer:
            writer.update_document(**article_document(article))
        assert titles("refund") == []  # ... this request keeps the index it looked at
    with app.test_request_context():
        assert titles("refund") == ["Refund a payment"]


def test_a_request_sees_its_own_index_write_at_once(app, make_article):
    make_article("Printer offline", "Turn the printer off and on again.")
    with app.test_request_context():
        assert titles("invoice") == []
        make_article("Download an invoice", "Invoices are under Billing.", index=False)
        assert process_index_queue() == 1
        assert titles("invoice") == ["Download an invoice"]
        assert store().generation() == store().searcher().reader().generation()


def test_snippets_follow_an_edited_article(app, make_article, agent, run_jobs):
    """Matched words' offsets are remembered per index generation: after an edit and a
    rebuild (which numbers the documents afresh, so the article gets its old number back)
    the snippet marks the word where the new text has it."""
    from portal.extensions import db
    from portal.kb.services import ArticleInput, update_article
    from portal.search import reindex_all

    article = make_article("Printer offline", "Spooler stuck? Restart it from Settings.")

    def snippet():
        with app.test_request_context():
            [hit] = search_articles("spooler", Audience.PUBLIC).hits
            return str(hit.snippet_html)

    assert re.match(r"<mark[^>]*>Spooler</mark> stuck\?", snippet())
    assert re.match(r"<mark[^>]*>Spooler</mark> stuck\?", snippet())  # remembered
    update_article(article, ArticleInput(
        title=article.title, body="Open Devices, then restart the spooler service.",
        section_id=article.section_id), agent, expected_version=article.version)
    db.session.commit()
    run_jobs()
    reindex_all()
    assert re.search(r"then restart the <mark[^>]*>spooler</mark>", snippet())
