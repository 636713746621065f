"""Article views, buffered in memory and written in one short transaction per flush
(portal/write_buffer.py: when, and what a crash may lose).

A view is appended to the process's buffer; `flush_views()` writes all buffered views at
once, with the time each happened, so the reports ("read before filing a ticket") see the same
data, a few seconds later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from portal import write_buffer
from portal.db import utcnow
from portal.kb.models import Article, ArticleView, SearchLog

BUFFER = "article views"


@dataclass(frozen=True)
class _View:
    article_id: int
    viewer_key: str
    search_log_id: int | None
    at: datetime


def record_view(article_id: int, viewer_key: str, search_log_id: int | None) -> None:
    """Count one view (in memory: no database work)."""
    write_buffer.append(BUFFER, [_View(article_id, viewer_key, search_log_id, utcnow())])


def flush_views() -> int:
    """Write the buffered views of this process; returns how many."""
    return write_buffer.flush(BUFFER)


@write_buffer.writer(BUFFER)
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
