"""The knowledge base seen from a ticket: links to insert into replies, and "turn this into an
article" (a KB draft prefilled from the customer's question and the agent's answer)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from sqlalchemy import select

from portal.agent.services import ActionError
from portal.auth.models import User
from portal.extensions import db
from portal.kb.models import Article, ArticleStatus, KbSection, Visibility
from portal.kb.services import ArticleInput, create_article
from portal.search import Audience, search_articles
from portal.tickets.lifecycle import record_event
from portal.tickets.models import Ticket


@dataclass
class KbLink:
    article_id: int
    title: str
    url: str
    visibility: str


def article_url(article: Article) -> str:
    return url_for("kb.article", article_id=article.id, slug=article.slug, _external=True)


def kb_links(query: str, limit: int = 8) -> list[KbLink]:
    """Published articles agents may link to, through the KB search."""
    results = search_articles(query.strip()[:200], Audience.AGENTS, per_page=limit)
    ids = [hit.article_id for hit in results.hits]
    visibility = dict(
        db.session.execute(select(Article.id, Article.visibility).where(Article.id.in_(ids))).all()
    )
    return [
        KbLink(hit.article_id, hit.title, hit.url, visibility[hit.article_id].value)
        for hit in results.hits
        if hit.article_id in visibility
    ]


def _question_and_answer(ticket: Ticket) -> tuple[str, str]:
    public = [m for m in ticket.messages if not m.internal]
    question = next((m.body for m in public if not m.from_agent), "")
    answer = next((m.body for m in reversed(public) if m.from_agent), "")
    return question, answer


def draft_body(ticket: Ticket) -> str:
    question, answer = _question_and_answer(ticket)
    return f"## The question\n\n{question.strip()}\n\n## The answer\n\n{answer.strip()}\n"


def create_draft(ticket: Ticket, agent: User, section_id: int, title: str, body: str) -> Article:
    """A draft article: nothing reaches customers until the KB team reviews and publishes it."""
    title = title.strip()
    if not title or not body.strip():
        raise ActionError("The draft needs a title and a body.")
    section = db.session.get(KbSection, section_id)
    if section is None:
        raise ActionError("Choose a knowledge base section.")
    article = create_article(
        ArticleInput(title=title, body=body, section_id=section.id, visibility=Visibility.PUBLIC),
        agent,
        status=ArticleStatus.DRAFT,
        note=f"Drafted from ticket {ticket.reference}",
    )
    record_event(ticket, "article", agent, None, f"Draft article {article.id}: {title}"[:200])
    db.session.flush()
    return article
