"""The knowledge base seen from a ticket: links to insert into replies, and "turn this into an
article" (a KB draft prefilled from the customer's question and the agent's answer)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from flask import current_app, url_for
from sqlalchemy import select
from werkzeug.routing import BuildError

from portal.agent.queue import escape_like
from portal.agent.services import ActionError
from portal.auth.models import User
from portal.db import utcnow
from portal.extensions import db
from portal.kb.models import Article, ArticleRevision, ArticleStatus, KbSection, Visibility
from portal.tickets.lifecycle import record_event
from portal.tickets.models import Ticket


@dataclass
class KbLink:
    article_id: int
    title: str
    url: str
    visibility: str


def _article_url(article: Article) -> str:
    """The article's public address (the KB's home until the KB routes exist)."""
    if "kb.article" in current_app.view_functions:
        try:
            return url_for("kb.article", article_id=article.id, slug=article.slug, _external=True)
        except BuildError:
            pass
    return url_for("kb.home", _external=True)


def kb_links(query: str, limit: int = 8) -> list[KbLink]:
    """Published articles matching `query`, through the KB search when it is installed."""
    query = query.strip()[:200]
    if not query:
        return []
    try:
        search = importlib.import_module("portal.search")
    except ModuleNotFoundError:
        search = None
    if search is not None and hasattr(search, "search_articles"):
        from portal.search import Audience  # type: ignore[attr-defined]

        results = search.search_articles(query, Audience.AGENTS, limit=limit)
        articles = [getattr(r, "article", r) for r in getattr(results, "hits", results)]
    else:
        like = "%" + escape_like(query) + "%"
        articles = db.session.scalars(
            select(Article)
            .where(
                Article.status == ArticleStatus.PUBLISHED,
                Article.title.ilike(like, escape="\\") | Article.body.ilike(like, escape="\\"),
            )
            .order_by(Article.view_count.desc())
            .limit(limit)
        ).all()
    return [KbLink(a.id, a.title, _article_url(a), a.visibility.value) for a in articles]


def _question_and_answer(ticket: Ticket) -> tuple[str, str]:
    public = [m for m in ticket.messages if not m.internal]
    question = next((m.body for m in public if not m.from_agent), "")
    answer = next((m.body for m in reversed(public) if m.from_agent), "")
    return question, answer


def draft_body(ticket: Ticket) -> str:
    question, answer = _question_and_answer(ticket)
    return f"## The question\n\n{question.strip()}\n\n## The answer\n\n{answer.strip()}\n"


def create_draft(ticket: Ticket, agent: User, section_id: int, title: str, body: str) -> Article:
    """A draft, agents-only article (nothing reaches customers until the KB team publishes)."""
    title = title.strip()
    if not title or not body.strip():
        raise ActionError("The draft needs a title and a body.")
    section = db.session.get(KbSection, section_id)
    if section is None:
        raise ActionError("Choose a knowledge base section.")
    try:
        services = importlib.import_module("portal.kb.services")
    except ModuleNotFoundError:
        services = None
    if services is not None and hasattr(services, "create_draft"):
        article = services.create_draft(
            section=section, title=title, body=body, author=agent,
            note=f"Drafted from ticket {ticket.reference}",
        )
    else:
        article = _create_article(section, title, body, agent, ticket)
    record_event(ticket, "article", agent, None, f"Draft article {article.id}: {title}"[:200])
    db.session.flush()
    return article


def _create_article(
    section: KbSection, title: str, body: str, agent: User, ticket: Ticket
) -> Article:
    slug = "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())[:200]
    now = utcnow()
    article = Article(
        section=section,
        title=title[:200],
        slug=slug or "article",
        body=body,
        status=ArticleStatus.DRAFT,
        visibility=Visibility.INTERNAL,
        author_id=agent.id,
        version=1,
        created_at=now,
        updated_at=now,
    )
    db.session.add(article)
    db.session.flush()
    db.session.add(
        ArticleRevision(
            article_id=article.id,
            number=1,
            title=article.title,
            body=body,
            section_id=section.id,
            visibility=article.visibility.value,
            status=article.status.value,
            note=f"Drafted from ticket {ticket.reference}",
            author_id=agent.id,
            created_at=now,
        )
    )
    return article
