"""Knowledge base: categories > sections > articles, revisions, votes, views and search log."""

from __future__ import annotations

import enum
from datetime import date, datetime

from markupsafe import Markup
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.db import Base, utcnow
from portal.kb.markdown import Rendered, render_markdown


def _str_enum(cls):
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class ArticleStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Visibility(enum.StrEnum):
    PUBLIC = "public"  # everyone, signed in or not
    CUSTOMERS = "customers"  # signed-in customers (and agents)
    INTERNAL = "internal"  # agents only


class KbCategory(Base):
    __tablename__ = "kb_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(140))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    sections: Mapped[list[KbSection]] = relationship(
        back_populates="category", order_by="KbSection.position"
    )


class KbSection(Base):
    __tablename__ = "kb_sections"

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("kb_categories.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(140))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    category: Mapped[KbCategory] = relationship(back_populates="sections")
    articles: Mapped[list[Article]] = relationship(back_populates="section")


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (Index("ix_articles_status_visibility", "status", "visibility"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("kb_sections.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown
    # The body rendered and sanitised when it is saved (see `_render_body`), not per view.
    body_html: Mapped[str | None] = mapped_column(Text)
    body_toc: Mapped[list | None] = mapped_column(JSON)
    labels: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    status: Mapped[ArticleStatus] = mapped_column(
        _str_enum(ArticleStatus), default=ArticleStatus.DRAFT
    )
    visibility: Mapped[Visibility] = mapped_column(_str_enum(Visibility), default=Visibility.PUBLIC)
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Optimistic locking: an edit names the version it started from; a stale one is refused.
    version: Mapped[int] = mapped_column(Integer, default=1)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    helpful_yes: Mapped[int] = mapped_column(Integer, default=0)
    helpful_no: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime)

    section: Mapped[KbSection] = relationship(back_populates="articles")
    author: Mapped[User | None] = relationship()

    @property
    def label_list(self) -> list[str]:
        return [label.strip() for label in self.labels.split(",") if label.strip()]

    @property
    def rendered(self) -> Rendered:
        if self.body_html is None:  # written around the ORM (bulk imports): render now
            return render_markdown(self.body)
        return Rendered(html=Markup(self.body_html), toc=self.body_toc or [])  # noqa: S704


@event.listens_for(Article.body, "set")
def _render_body(article: Article, body: str, _old, _initiator) -> None:
    """Every change of the Markdown stores its sanitised HTML with it (nh3 output only)."""
    rendered = render_markdown(body)
    article.body_html = str(rendered.html)
    article.body_toc = rendered.toc


class ArticleRevision(Base):
    __tablename__ = "article_revisions"
    __table_args__ = (UniqueConstraint("article_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    section_id: Mapped[int | None] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(String(500), default="")
    visibility: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(200), default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    author: Mapped[User | None] = relationship()


class ArticleVote(Base):
    """One "was this helpful?" vote per signed-in user, or per browser for visitors."""

    __tablename__ = "article_votes"
    __table_args__ = (
        UniqueConstraint("article_id", "voter_key"),
        Index("ix_article_votes_review", "helpful", "review_done"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    # "u:<user id>" or "v:<random browser id>"; never an IP address or email.
    voter_key: Mapped[str] = mapped_column(String(80))
    helpful: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(40))
    comment: Mapped[str] = mapped_column(Text, default="")
    review_done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    article: Mapped[Article] = relationship()


class ArticleView(Base):
    """One row per article view, for reports (views per period, read just before filing)."""

    __tablename__ = "article_views"
    __table_args__ = (Index("ix_article_views_viewer_created", "viewer_key", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    viewer_key: Mapped[str] = mapped_column(String(80))
    search_log_id: Mapped[int | None] = mapped_column(
        ForeignKey("search_log.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class SearchLog(Base):
    """Every search: what was asked and what it found. No personal data."""

    __tablename__ = "search_log"
    # The report's "top searches with no results" (migration 0004_agent_search).
    __table_args__ = (
        Index("ix_search_log_no_results", "result_count", "created_at", "normalized"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    query: Mapped[str] = mapped_column(String(200))
    normalized: Mapped[str] = mapped_column(String(200), index=True)
    result_count: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20), default="search")  # search|instant|suggest
    opened_article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ReportSearchDay(Base):
    """Searches per day and normalised text (and of those, how many found nothing), kept by the
    database (triggers, migration scale5_0001) in the transaction of every search_log change:
    the reports read a row per day and text instead of every search of the period. Not written
    by the application."""

    __tablename__ = "report_search_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    normalized: Mapped[str] = mapped_column(String(200), primary_key=True)
    searches: Mapped[int] = mapped_column(Integer, default=0)
    no_results: Mapped[int] = mapped_column(Integer, default=0)


class IndexQueue(Base):
    """Articles whose search index / embeddings entry must be rewritten.

    Written in the same transaction as the article change, emptied after a successful index
    write. Whatever is left (the index was locked, the disk full) is retried later.
    """

    __tablename__ = "index_queue"

    article_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class ArticleEmbedding(Base):
    """Sentence embeddings of an article's chunks (float32 bytes), for meaning-based ranking."""

    __tablename__ = "article_embeddings"
    __table_args__ = (UniqueConstraint("article_id", "chunk"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    chunk: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(300), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(80))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class LearnedQuestion(Base):
    """A question customers confirmed an article answered ("This answered my question" on a
    suggestion the portal made for that question): the article is lifted for the same
    question asked again in nearly the same words (semantic.LEARNED_WEIGHT). One row per
    (normalised question, article); `vector` is computed by a job (None until then). A row
    an admin forgot stays, without its vector, so that the pair is never learned again."""

    __tablename__ = "learned_questions"
    __table_args__ = (UniqueConstraint("question", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(String(300))
    customers: Mapped[int] = mapped_column(Integer, default=0)  # distinct, each counted once
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    model: Mapped[str | None] = mapped_column(String(80), nullable=True)
    forgotten_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    article: Mapped[Article] = relationship()


class LearnedConfirmation(Base):
    """One customer's confirmation of a learned question: a customer counts once."""

    __tablename__ = "learned_confirmations"

    learned_question_id: Mapped[int] = mapped_column(
        ForeignKey("learned_questions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
