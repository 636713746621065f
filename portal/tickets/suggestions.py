"""Ticket deflection: articles suggested while a request is typed, and what people did with
them (impressions, opens, "this answered my question") for the reports."""

from __future__ import annotations

import functools

from flask import url_for
from sqlalchemy import bindparam, insert, select

from portal import write_buffer
from portal.db import utcnow
from portal.extensions import db
from portal.kb.markdown import plain_text
from portal.kb.models import Article, ArticleStatus
from portal.search import Audience, Hit, audience_for, learned, suggest_articles
from portal.search.audience import VISIBLE_TO
from portal.tickets.models import SuggestionEvent

SUGGESTION_LIMIT = 5
MIN_QUERY_CHARS = 4
ANSWER_TOKEN_CHARS = 2048  # a signed question of up to 300 characters fits in ~600


def customer_audience(user) -> Audience:
    """The audience for suggestions on the request form: never wider than customers'."""
    audience = audience_for(user)
    return Audience.CUSTOMERS if audience == Audience.AGENTS else audience


def article_url(article: Article) -> str:
    return url_for("kb.article", article_id=article.id, slug=article.slug)


def preview_text(article: Article, length: int = 600) -> str:
    text = plain_text(article.body)
    return text if len(text) <= length else text[:length].rsplit(" ", 1)[0] + "…"


def suggestion_query(subject: str, description: str) -> str:
    return f"{subject or ''} {(description or '')[:500]}".strip()


def suggestions_for(user, subject: str, description: str) -> tuple[str, list[Hit]]:
    """The query and up to five articles this person may read. Reads only: the impressions
    are kept in memory (`record_impressions`), not written by the request."""
    query = suggestion_query(subject, description)
    if len(query) < MIN_QUERY_CHARS:
        return query, []
    return query, suggest_articles(query, customer_audience(user), limit=SUGGESTION_LIMIT)


# Impressions and opens come from GET requests typed at speed: they are counted in memory and
# written in one transaction per flush (portal/write_buffer.py), as article views are. A
# deflection ("this answered my question") is a POST, written with it (`record`).
BUFFER = "suggestion events"


def record_impressions(form_key: str, query: str, hits: list[Hit]) -> None:
    buffer_events(kind="impression", form_key=form_key, query=query,
                  article_ids=[h.article_id for h in hits])


def buffer_events(*, kind: str, form_key: str, query: str = "",
                  article_ids: list[int | None]) -> None:
    """Count events in memory (no database work); the reports see them once flushed."""
    write_buffer.append(BUFFER, _rows(kind, form_key, query, article_ids))


def record(*, kind: str, form_key: str, query: str = "", article_ids: list[int | None]) -> None:
    """Events written in the caller's transaction."""
    if article_ids:
        _insert(db.session, _rows(kind, form_key, query, article_ids))


def _rows(kind: str, form_key: str, query: str, article_ids: list[int | None]) -> list[dict]:
    now = utcnow()
    return [{"kind": kind, "article_id": article_id, "form_key": form_key[:64],
             "query": query[:200], "created_at": now} for article_id in article_ids]


@write_buffer.writer(BUFFER)
def _write(session, rows: list[dict]) -> None:
    """An article deleted since its event was counted is left out of the row, as its
    deletion does to the rows already stored."""
    wanted = {row["article_id"] for row in rows} - {None}
    existing = set(session.scalars(select(Article.id).where(Article.id.in_(wanted)))
                   ) if wanted else set()
    _insert(session, [row if row["article_id"] in existing else {**row, "article_id": None}
                      for row in rows])


def _insert(session, rows: list[dict]) -> None:
    """All the rows in one statement, whose commit does not wait for the disk on PostgreSQL
    (`db.without_waiting_for_disk`: the events are analytics).

    The rows go as parameters of one INSERT built once per database kind (executemany):
    rows written into the statement itself made a new statement to compile on every call,
    most of a suggestion request's millisecond here."""
    session.execute(_insert_event(session.get_bind().dialect.name), rows)


_EVENT_COLUMNS = ("kind", "article_id", "form_key", "query", "created_at")


@functools.cache
def _insert_event(_dialect: str):
    """One event row's INSERT, from parameters named as its columns."""
    columns = SuggestionEvent.__table__.c
    row = select(*(bindparam(name, type_=columns[name].type) for name in _EVENT_COLUMNS))
    return insert(SuggestionEvent.__table__).from_select(
        _EVENT_COLUMNS, db.without_waiting_for_disk(row))


def answer_token(user, query: str, hits: list[Hit], form_key: str) -> str | None:
    """What the suggested articles' "This answered my question" forms carry so that the
    portal may learn the question it suggested them for (portal/search/learned.py)."""
    return learned.answer_token(user, query, [h.article_id for h in hits], form_key)


def learn_answered(user, token: str, article: Article, form_key: str) -> None:
    """Learn the question a deflection's token names, in the caller's transaction; a bad or
    stale token learns nothing (the deflection itself is recorded all the same)."""
    learned.learn(user, token, article, form_key)


def visible_article(article_id: int, user) -> Article | None:
    """The published article when this person may read it (never internal or draft)."""
    article = db.session.get(Article, article_id)
    if article is None or article.status != ArticleStatus.PUBLISHED:
        return None
    allowed = VISIBLE_TO[customer_audience(user)]
    return article if article.visibility.value in allowed else None
