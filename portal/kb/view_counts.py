"""Article views, buffered in memory and written in one short transaction per flush.

Writing each view as it happened (a row for the reports and a bump of the article's counter)
took the database's write lock on every article page. A view is now appended to the process's
buffer; `flush_views()` writes all buffered views at once, with the time each happened, so the
reports ("read before filing a ticket") see the same data, a few seconds later.

The buffer is flushed by the article request that finds it older than VIEW_FLUSH_SECONDS
(config; 0 writes every view at once), by a timer VIEW_FLUSH_SECONDS after the first view it
holds (so an idle worker's views are written too), and by gunicorn's worker_exit hook. A
crashed process loses the views it had not flushed yet: at most VIEW_FLUSH_SECONDS' worth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import insert, select, update

from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import Article, ArticleView, SearchLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _View:
    article_id: int
    viewer_key: str
    search_log_id: int | None
    at: datetime


class _Buffer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.views: list[_View] = []
        self.since = time.monotonic()

    def take(self) -> list[_View]:
        with self.lock:
            views, self.views = self.views, []
            self.since = time.monotonic()
        return views

    def put_back(self, views: list[_View]) -> None:
        with self.lock:
            self.views[:0] = views


def _buffer() -> _Buffer:
    extensions = current_app.extensions
    buffer = extensions.get("portal_view_buffer")
    if buffer is None:
        buffer = extensions.setdefault("portal_view_buffer", _Buffer())
    return buffer


def record_view(article_id: int, viewer_key: str, search_log_id: int | None) -> None:
    """Count one view (in memory: no database work)."""
    buffer = _buffer()
    with buffer.lock:
        first = not buffer.views
        buffer.views.append(_View(article_id, viewer_key, search_log_id, utcnow()))
    if first and not current_app.testing:
        _flush_later(current_app._get_current_object())


def _flush_later(app) -> None:
    """Write this process's views in VIEW_FLUSH_SECONDS (so an idle worker's views are
    written too); after a failure (a busy database), try again as long as views wait."""
    seconds = app.config["VIEW_FLUSH_SECONDS"]
    if seconds > 0:
        timer = threading.Timer(seconds, _flush_now, [app])
        timer.daemon = True
        timer.start()


def _flush_now(app) -> None:
    with app.app_context():
        try:
            flush_views()
        except Exception:  # the views stay buffered: try again later
            log.exception("writing buffered article views failed; trying again")
            _flush_later(app)


def flush_due() -> bool:
    buffer = _buffer()
    age = time.monotonic() - buffer.since
    return bool(buffer.views) and age >= current_app.config["VIEW_FLUSH_SECONDS"]


def flush_views() -> int:
    """Write the buffered views of this process; returns how many. Safe to call any time
    (a scheduled job, a request, at exit); on a failure the views stay buffered."""
    buffer = _buffer()
    views = buffer.take()
    if not views:
        return 0
    try:
        with db.writing() as session:
            _write(session, views)
    except Exception:
        buffer.put_back(views)
        raise
    return len(views)


def _write(session, views: list[_View]) -> None:
    article_ids = set(session.scalars(
        select(Article.id).where(Article.id.in_({v.article_id for v in views}))))
    views = [v for v in views if v.article_id in article_ids]  # deleted since: nothing to count
    asked = {v.search_log_id for v in views if v.search_log_id is not None}
    searches = set(session.scalars(select(SearchLog.id).where(SearchLog.id.in_(asked)))
                   ) if asked else set()
    if not views:
        return
    session.execute(insert(ArticleView), [
        {"article_id": v.article_id, "viewer_key": v.viewer_key, "created_at": v.at,
         "search_log_id": v.search_log_id if v.search_log_id in searches else None}
        for v in views])
    for article_id, count in Counter(v.article_id for v in views).items():
        session.execute(update(Article).where(Article.id == article_id)
                        .values(view_count=Article.view_count + count))
    opened: dict[int, int] = {}
    for view in views:  # a search records the first article opened from it
        if view.search_log_id in searches:
            opened.setdefault(view.search_log_id, view.article_id)
    for search_log_id, article_id in opened.items():
        session.execute(update(SearchLog).where(SearchLog.id == search_log_id,
                                                SearchLog.opened_article_id.is_(None))
                        .values(opened_article_id=article_id))
