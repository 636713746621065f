"""Numbers for the agents' KB report: what people search, what they miss, what fails them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import Article, ArticleVote, SearchLog

TOP = 20
# What counts as a search in the report: submitted searches, not every instant keystroke.
REPORTED_SOURCES = ("search",)


def kb_report(days: int) -> dict:
    since = utcnow() - timedelta(days=days)
    searches = select(SearchLog).where(SearchLog.created_at >= since,
                                       SearchLog.source.in_(REPORTED_SOURCES)).subquery()
    top = db.session.execute(
        select(searches.c.normalized, func.count().label("n"),
               func.avg(searches.c.result_count).label("avg_results"),
               func.count(searches.c.opened_article_id).label("opened"))
        .group_by(searches.c.normalized).order_by(func.count().desc()).limit(TOP)
    ).all()
    no_results = db.session.execute(
        select(searches.c.normalized, func.count().label("n"),
               func.max(searches.c.created_at).label("last"))
        .where(searches.c.result_count == 0)
        .group_by(searches.c.normalized).order_by(func.count().desc()).limit(TOP)
    ).all()
    totals = db.session.execute(
        select(func.count(), func.count(searches.c.opened_article_id),
               func.sum(case((searches.c.result_count == 0, 1), else_=0)))
    ).one()
    most_no = db.session.scalars(
        select(Article).where(Article.helpful_no > 0)
        .order_by(Article.helpful_no.desc(), Article.id).limit(TOP)
    ).all()
    reasons = _reason_counts([a.id for a in most_no])
    review = db.session.scalars(
        select(ArticleVote).where(ArticleVote.helpful.is_(False),
                                  ArticleVote.review_done.is_(False))
        .options(selectinload(ArticleVote.article))
        .order_by(ArticleVote.updated_at.desc()).limit(100)
    ).all()
    return {
        "top_searches": top, "no_results": no_results,
        "search_total": totals[0] or 0, "search_opened": totals[1] or 0,
        "search_empty": totals[2] or 0,
        "most_no": most_no, "reasons": reasons, "review": review,
    }


def _reason_counts(article_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = db.session.execute(
        select(ArticleVote.article_id, ArticleVote.reason, func.count())
        .where(ArticleVote.article_id.in_(article_ids), ArticleVote.helpful.is_(False))
        .group_by(ArticleVote.article_id, ArticleVote.reason)
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for article_id, reason, n in rows:
        counts.setdefault(article_id, {})[reason or "none"] = n
    return counts
