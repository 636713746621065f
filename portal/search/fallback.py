"""Search straight from the database while the index is missing, unreadable or rebuilding.

Plainer than the index (substring matches of every word, or any word, in title, labels and
body; title matches first), but never an empty knowledge base. Visibility is the same rule
as everywhere: published articles of the audience's visibilities only.
"""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.kb.markdown import plain_text
from portal.kb.models import Article, ArticleStatus, KbSection
from portal.search.audience import VISIBLE_TO, Audience
from portal.search.queryparse import MAX_QUERY_WORDS, plain_words

SNIPPET_CHARS = 220
NOTICE = "Search is being rebuilt: these results are a simpler match and may be less precise."


def _like(word: str) -> str:
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _snippet(body: str):
    text = " ".join(plain_text(body).split())
    if len(text) > SNIPPET_CHARS:
        text = text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"
    return escape(text)


def database_search(query: str, audience: Audience, *, page: int, per_page: int,
                    category_id: int | None, any_word: bool):
    """(hits, total) for `query`; hits are `service.Hit`s with escaped plain-text snippets."""
    from portal.search.service import Hit

    words = [w.rstrip("*") for w in plain_words(query).split()][:MAX_QUERY_WORDS]
    words = [w for w in words if w]
    if not words:
        return [], 0
    text = func.lower(Article.title + " " + Article.labels + " " + Article.body)
    matches = [text.like(_like(w), escape="\\") for w in words]
    stmt = select(Article).where(
        Article.status == ArticleStatus.PUBLISHED,
        Article.visibility.in_(VISIBLE_TO[audience]),
        or_(*matches) if any_word else and_(*matches),
    )
    if category_id is not None:
        stmt = stmt.join(Article.section).where(KbSection.category_id == category_id)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    in_title = sum(case((func.lower(Article.title).like(_like(w), escape="\\"), 1), else_=0)
                   for w in words)
    articles = db.session.scalars(
        stmt.options(selectinload(Article.section).selectinload(KbSection.category))
        .order_by(in_title.desc(), Article.helpful_yes.desc(), Article.id)
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    hits = [
        Hit(article_id=a.id, title=a.title, slug=a.slug,
            section=a.section.name, category=a.section.category.name,
            snippet_html=_snippet(a.body), score=0.0)
        for a in articles
    ]
    return hits, total
