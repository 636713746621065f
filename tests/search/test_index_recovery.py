"""A deleted or unreadable index is rebuilt at once in the background, and search answers
from the database meanwhile (issue 11, item 9). Customers used to see 0 results for about
15 s, until the throttled catch-up rebuilt the index."""

import gc
import shutil
from pathlib import Path

import pytest
from whoosh.filedb.filestore import FileStorage

from portal.extensions import db
from portal.kb.models import Visibility
from portal.search import Audience, search_articles, suggest_articles
from portal.search.fallback import NOTICE
from portal.search.index import store
from portal.search.schema import INDEX_NAME


def titles(results):
    return [h.title for h in results.hits]


def delete_index_and_hold_its_lock(app):
    """Delete the index folder, then hold the write lock so the rebuild has to wait: what
    search answers meanwhile is the fallback's answer."""
    shutil.rmtree(app.config["INDEX_DIR"])
    Path(app.config["INDEX_DIR"]).mkdir()
    lock = FileStorage(app.config["INDEX_DIR"]).lock(f"{INDEX_NAME}_WRITELOCK")
    assert lock.acquire()
    return lock


def test_search_answers_from_the_database_while_the_index_is_rebuilt(app, make_article):
    make_article("Export to CSV", "Download your tickets as a csv export.")
    make_article("Internal csv runbook", "csv", visibility=Visibility.INTERNAL)
    assert titles(search_articles("csv", Audience.PUBLIC)) == ["Export to CSV"]
    lock = delete_index_and_hold_its_lock(app)
    try:
        # The next request (a request looks at the index folder once: index.py) ...
        with app.test_request_context():
            during = search_articles("csv export", Audience.PUBLIC)
            assert titles(during) == ["Export to CSV"]  # never an empty knowledge base
            assert during.message == NOTICE
            assert "csv" in during.hits[0].snippet_html
            assert [h.title for h in suggest_articles("how do I export a csv",
                                                      Audience.PUBLIC)] == ["Export to CSV"]
            # Internal articles stay out of the fallback exactly as out of the index.
            assert titles(search_articles("runbook", Audience.PUBLIC)) == []
            assert titles(search_articles("runbook", Audience.AGENTS)) == [
                "Internal csv runbook"]
            assert store().rebuilding
    finally:
        lock.release()
    db.session.commit()  # hold no database transaction the rebuild needs
    store().rebuild_thread.join(70)
    after = search_articles("csv export", Audience.PUBLIC)
    assert titles(after) == ["Export to CSV"] and after.message != NOTICE
    assert store().searcher().doc_count() == 2  # the rebuilt index has every article


def test_a_deleted_index_is_rebuilt_without_waiting_for_a_catch_up(app, make_article):
    make_article("Webhooks", "signature checks")
    shutil.rmtree(app.config["INDEX_DIR"])
    assert titles(search_articles("signature", Audience.PUBLIC)) == ["Webhooks"]
    db.session.commit()
    store().rebuild_thread.join(70)
    assert store().searcher().doc_count() == 1


def test_fallback_snippets_are_escaped(app, make_article):
    make_article("Markup", "Type <script>alert(1)</script> to break things.")
    lock = delete_index_and_hold_its_lock(app)
    try:
        [hit] = search_articles("break things", Audience.PUBLIC).hits
        assert "<script>" not in hit.snippet_html
    finally:
        lock.release()
        db.session.commit()
        store().rebuild_thread.join(70)


# Whoosh leaves the damaged table of contents' file open when it fails to read it.
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_damaged_index_is_recreated_and_rebuilt(app, make_article):
    make_article("Webhooks", "signature checks")
    assert titles(search_articles("signature", Audience.PUBLIC)) == ["Webhooks"]
    for toc in Path(app.config["INDEX_DIR"]).glob("*.toc"):
        toc.write_bytes(b"not a table of contents")
    store().reset()  # as a worker that starts now: it must open the damaged index
    assert titles(search_articles("signature", Audience.PUBLIC)) == ["Webhooks"]
    db.session.commit()
    store().rebuild_thread.join(70)
    assert store().searcher().doc_count() == 1
    assert search_articles("signature", Audience.PUBLIC).message != NOTICE
    gc.collect()  # close whoosh's leaked file inside this test, under its warning filter
