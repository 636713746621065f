"""Ticket deflection: articles suggested while a request is typed, and what people did with
them (impressions, opens, "this answered my question") for the reports."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import or_, select

from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import Article, ArticleStatus, KbSection, Visibility
from portal.tickets.models import SuggestionEvent

SUGGESTION_LIMIT = 5
MIN_QUERY_CHARS = 4


# --- TEMPORARY: replace with portal.search once the kb branch lands -------------------------
# `suggest_articles` / `audience_for` follow the search API contract (Hit fields included) but
# only match title words against published, customer-visible articles.


@dataclass(frozen=True)
class Hit:
    article_id: int
    title: str
    url: str
    section: str
    category: str
    snippet_html: Markup
    score: float


def audience_for(user) -> tuple[Visibility, ...]:
    if user is not None and getattr(user, "is_authenticated", False):
        return (Visibility.PUBLIC, Visibility.CUSTOMERS)
    return (Visibility.PUBLIC,)


def article_url(article: Article) -> str:
    from flask import url_for
    from werkzeug.routing import BuildError

    try:
        return url_for("kb.article", article_id=article.id, slug=article.slug)
    except BuildError:
        return url_for("kb.home")


def suggest_articles(text: str, audience, limit: int = SUGGESTION_LIMIT) -> list[Hit]:
    words = [w for w in "".join(c if c.isalnum() else " " for c in text).lower().split()
             if len(w) > 2][:12]
    if not words:
        return []
    rows = db.session.execute(
        select(Article, KbSection)
        .join(KbSection, Article.section_id == KbSection.id)
        .where(
            Article.status == ArticleStatus.PUBLISHED,
            Article.visibility.in_(audience),
            or_(*(Article.title.ilike(f"%{w}%") for w in words)),
        )
        .limit(50)
    ).all()
    scored = []
    for article, section in rows:
        title = article.title.lower()
        score = float(sum(w in title for w in words))
        scored.append(
            Hit(article.id, article.title, article_url(article), section.name, "",
                escape(article.body[:160]), score)
        )
    scored.sort(key=lambda h: (-h.score, h.title))
    return scored[:limit]


# --- end TEMPORARY ---------------------------------------------------------------------------


class _SignedInCustomer:
    """Stands in for an agent on the request form: suggestions never include internal ones."""

    is_authenticated = True
    is_agent = False


def customer_audience(user):
    """The audience for suggestions on the request form: never wider than customers'."""
    if user is not None and getattr(user, "is_agent", False):
        user = _SignedInCustomer()
    return audience_for(user)


def suggestion_query(subject: str, description: str) -> str:
    return f"{subject or ''} {(description or '')[:500]}".strip()


def suggestions_for(user, subject: str, description: str, form_key: str) -> list[Hit]:
    """Up to five articles this person may read, each recorded as an impression."""
    query = suggestion_query(subject, description)
    if len(query) < MIN_QUERY_CHARS:
        return []
    hits = suggest_articles(query, customer_audience(user), limit=SUGGESTION_LIMIT)
    record(
        kind="impression", form_key=form_key, query=query, article_ids=[h.article_id for h in hits]
    )
    return hits


def record(*, kind: str, form_key: str, query: str = "", article_ids: list[int | None]) -> None:
    now = utcnow()
    for article_id in article_ids:
        db.session.add(
            SuggestionEvent(
                kind=kind, article_id=article_id, form_key=form_key[:64], query=query[:200],
                created_at=now,
            )
        )


def visible_article(article_id: int, user) -> Article | None:
    """The published article when this person may read it (never internal or draft)."""
    article = db.session.get(Article, article_id)
    if article is None or article.status != ArticleStatus.PUBLISHED:
        return None
    signed_in = user is not None and getattr(user, "is_authenticated", False)
    allowed = {Visibility.PUBLIC, Visibility.CUSTOMERS} if signed_in else {Visibility.PUBLIC}
    return article if article.visibility in allowed else None
