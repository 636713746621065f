"""A missing or unreadable index is rebuilt at once, in the background, and searches answer
from the database meanwhile, so customers never see an empty knowledge base.

The rebuild runs in a thread of the process that noticed (one at a time per process; Whoosh's
write lock keeps two processes from writing at once: a second one gives up and its searches
keep using the fallback until the first one's index is there). A deployment with the job
queue may move it there; the rule stays: answer from the fallback while it runs.
"""

from __future__ import annotations

import logging
import threading

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.kb.models import Article, ArticleStatus
from portal.search.index import INDEX_ERRORS, IndexStore

log = logging.getLogger(__name__)
_start_lock = threading.Lock()


def index_incomplete(index_store: IndexStore) -> bool:
    """True when the index cannot answer for the database: being rebuilt, unreadable, or
    empty while published articles exist (freshly recreated after the folder was deleted)."""
    if index_store.rebuilding:
        return True
    try:
        searcher = index_store.searcher()
    except INDEX_ERRORS:
        log.exception("search index unreadable")
        return True
    if searcher.doc_count() > 0:
        return False
    return db.session.scalar(
        select(Article.id).where(Article.status == ArticleStatus.PUBLISHED).limit(1)
    ) is not None


def start_rebuild(index_store: IndexStore) -> None:
    """Rebuild the whole index from the database in a background thread (if none runs)."""
    with _start_lock:
        if index_store.rebuilding:
            return
        index_store.rebuilding = True
    app = current_app._get_current_object()
    thread = threading.Thread(target=_rebuild, args=(app, index_store), daemon=True,
                              name="search-index-rebuild")
    index_store.rebuild_thread = thread
    log.warning("search index missing or unreadable at %s: rebuilding it in the background",
                index_store.path)
    thread.start()


def _rebuild(app, index_store: IndexStore) -> None:
    from portal.search.queue import reindex_all

    try:
        with app.app_context():
            count = reindex_all()
        log.warning("search index rebuilt: %d articles", count)
    except Exception:  # another process holds the lock, or the disk failed: searches go on
        log.exception("search index rebuild failed; searches use the database meanwhile")
    finally:
        index_store.rebuilding = False
