"""Knowledge-base domain logic. Functions flush; the calling view (or CLI) commits once."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import func, insert, literal, select, update

from portal import signals
from portal.db import utcnow
from portal.extensions import db
from portal.kb import view_counts
from portal.kb.models import (
    Article,
    ArticleRevision,
    ArticleStatus,
    ArticleVote,
    KbCategory,
    KbSection,
    SearchLog,
    Visibility,
)
from portal.search import enqueue_article
from portal.search.queryparse import normalize

VOTE_REASONS = {
    "outdated": "Outdated",
    "unclear": "Unclear or hard to follow",
    "not_solved": "Didn't solve my problem",
    "other": "Other",
}
MAX_LABELS = 12


class ConflictError(Exception):
    """The article changed since the editor loaded it (optimistic locking)."""

    def __init__(self, current_version: int, editor: str | None) -> None:
        self.current_version = current_version
        self.editor = editor
        super().__init__(f"article is now at version {current_version}")


def slugify(text: str, max_length: int = 80) -> str:
    """A readable URL part: ASCII-folded, lowercase, dash-separated."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "article"


def clean_labels(raw: str) -> str:
    seen: dict[str, None] = {}
    for label in (raw or "").split(","):
        label = " ".join(label.split()).lower()[:40]
        if label:
            seen.setdefault(label, None)
    return ", ".join(list(seen)[:MAX_LABELS])


# --- categories and sections --------------------------------------------------------------

def _next_position(model, **where) -> int:
    stmt = select(func.coalesce(func.max(model.position), -1))
    for key, value in where.items():
        stmt = stmt.where(getattr(model, key) == value)
    return db.session.scalar(stmt) + 1


def create_category(name: str, description: str = "") -> KbCategory:
    category = KbCategory(name=name.strip(), slug=slugify(name),
                          description=(description or "").strip(),
                          position=_next_position(KbCategory))
    db.session.add(category)
    db.session.flush()
    return category


def update_category(category: KbCategory, name: str, description: str) -> None:
    category.name = name.strip()
    category.slug = slugify(name)
    category.description = (description or "").strip()
    _reindex_where(KbSection.category_id == category.id)


def create_section(category: KbCategory, name: str, description: str = "") -> KbSection:
    section = KbSection(category_id=category.id, name=name.strip(), slug=slugify(name),
                        description=(description or "").strip(),
                        position=_next_position(KbSection, category_id=category.id))
    db.session.add(section)
    db.session.flush()
    return section


def update_section(section: KbSection, name: str, description: str, category_id: int) -> None:
    moved = section.category_id != category_id
    section.name = name.strip()
    section.slug = slugify(name)
    section.description = (description or "").strip()
    if moved:
        section.category_id = category_id
        section.position = _next_position(KbSection, category_id=category_id)
    _reindex_where(KbSection.id == section.id)


def _reindex_where(section_condition) -> None:
    """Names of sections/categories are indexed with each article: queue the affected ones."""
    db.session.flush()
    ids = db.session.scalars(
        select(Article.id).join(KbSection).where(section_condition)
    )
    for article_id in ids:
        enqueue_article(article_id)


def move(items: list, item, direction: int) -> None:
    """Swap `item` with its neighbour in an ordered list (direction -1 up, +1 down)."""
    index = items.index(item)
    other = index + direction
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]
    for position, entry in enumerate(items):
        entry.position = position
    db.session.flush()


def move_articles(article_ids: list[int], section: KbSection, author) -> int:
    articles = db.session.scalars(select(Article).where(Article.id.in_(article_ids))).all()
    for article in articles:
        if article.section_id != section.id:
            article.section = section
            _bump(article, author, "Moved to " + section.name)
    return len(articles)


# --- articles -----------------------------------------------------------------------------

@dataclass
class ArticleInput:
    title: str
    body: str
    section_id: int
    labels: str = ""
    visibility: Visibility = Visibility.PUBLIC
    promoted: bool = False


def _record_revision(article: Article, author, note: str) -> ArticleRevision:
    revision = ArticleRevision(
        article_id=article.id, number=article.version, title=article.title, body=article.body,
        section_id=article.section_id, labels=article.labels,
        visibility=article.visibility.value, status=article.status.value, note=note[:200],
        author_id=author.id if author else None,
    )
    db.session.add(revision)
    return revision


def _bump(article: Article, author, note: str) -> None:
    """Every change: new version, a revision, and an index-queue entry."""
    article.version += 1
    article.updated_at = utcnow()
    db.session.flush()
    _record_revision(article, author, note)
    enqueue_article(article.id)


def create_article(data: ArticleInput, author, *, status: ArticleStatus = ArticleStatus.DRAFT,
                   note: str = "Created") -> Article:
    now = utcnow()
    article = Article(
        title=data.title.strip(), slug=slugify(data.title), body=data.body,
        section_id=data.section_id, labels=clean_labels(data.labels),
        visibility=data.visibility, promoted=data.promoted, status=status,
        author_id=author.id if author else None, version=1, created_at=now, updated_at=now,
        published_at=now if status == ArticleStatus.PUBLISHED else None,
    )
    db.session.add(article)
    db.session.flush()
    _record_revision(article, author, note)
    enqueue_article(article.id)
    if status == ArticleStatus.PUBLISHED:
        signals.article_published.send(article)
    return article


def _check_version(article: Article, expected_version: int) -> None:
    if article.version != expected_version:
        last = db.session.scalar(
            select(ArticleRevision).where(ArticleRevision.article_id == article.id)
            .order_by(ArticleRevision.number.desc()).limit(1)
        )
        editor = last.author.name if last and last.author else None
        raise ConflictError(article.version, editor)


def update_article(article: Article, data: ArticleInput, author, expected_version: int,
                   status: ArticleStatus | None = None, note: str = "Edited") -> None:
    """Save an edit; raises ConflictError if someone else saved since `expected_version`."""
    _check_version(article, expected_version)
    article.title = data.title.strip()
    article.slug = slugify(data.title)
    article.body = data.body
    article.section_id = data.section_id
    article.labels = clean_labels(data.labels)
    article.visibility = data.visibility
    article.promoted = data.promoted
    if status is not None:
        _apply_status(article, status)
    _bump(article, author, note)


def _apply_status(article: Article, status: ArticleStatus) -> None:
    if status == ArticleStatus.PUBLISHED and article.published_at is None:
        article.published_at = utcnow()
    newly_published = status == ArticleStatus.PUBLISHED != article.status
    article.status = status
    if newly_published:
        signals.article_published.send(article)


STATUS_NOTES = {
    ArticleStatus.PUBLISHED: "Published",
    ArticleStatus.DRAFT: "Unpublished (back to draft)",
    ArticleStatus.ARCHIVED: "Archived",
}


def change_status(article: Article, status: ArticleStatus, author,
                  expected_version: int) -> None:
    _check_version(article, expected_version)
    _apply_status(article, status)
    _bump(article, author, STATUS_NOTES[status])


def restore_revision(article: Article, revision: ArticleRevision, author,
                     expected_version: int) -> None:
    """Bring back an old revision's content as a new revision (status is left as it is)."""
    _check_version(article, expected_version)
    article.title = revision.title
    article.slug = slugify(revision.title)
    article.body = revision.body
    article.labels = revision.labels
    if revision.section_id and db.session.get(KbSection, revision.section_id):
        article.section_id = revision.section_id
    article.visibility = Visibility(revision.visibility)
    _bump(article, author, f"Restored revision {revision.number}")


# --- readers: views, votes, search log ----------------------------------------------------

def new_visitor_id() -> str:
    return secrets.token_urlsafe(18)


def record_view(article: Article, viewer_key: str, search_log_id: int | None) -> None:
    """Count a view: buffered in memory, written later (portal/write_buffer.py)."""
    view_counts.record_view(article.id, viewer_key, search_log_id)


def current_vote(article: Article, voter_key: str | None) -> ArticleVote | None:
    if not voter_key:
        return None
    return db.session.scalar(select(ArticleVote).where(
        ArticleVote.article_id == article.id, ArticleVote.voter_key == voter_key))


def cast_vote(article: Article, voter_key: str, helpful: bool, reason: str | None = None,
              comment: str = "") -> ArticleVote:
    """One vote per voter, changeable; the article's counters follow the change."""
    vote = current_vote(article, voter_key)
    if reason not in VOTE_REASONS:
        reason = None
    comment = (comment or "").strip()[:1000] if not helpful else ""
    if vote is None:
        vote = ArticleVote(article_id=article.id, voter_key=voter_key, helpful=helpful)
        db.session.add(vote)
        _adjust_counts(article, helpful, +1)
    elif vote.helpful != helpful:
        _adjust_counts(article, vote.helpful, -1)
        _adjust_counts(article, helpful, +1)
        vote.helpful = helpful
    vote.reason = None if helpful else (reason or vote.reason)
    vote.comment = comment or ("" if helpful else vote.comment)
    vote.review_done = False
    vote.updated_at = utcnow()
    db.session.flush()
    return vote


def _adjust_counts(article: Article, helpful: bool, delta: int) -> None:
    column = Article.helpful_yes if helpful else Article.helpful_no
    db.session.execute(update(Article).where(Article.id == article.id)
                       .values({column: column + delta}))
    db.session.refresh(article, ["helpful_yes", "helpful_no"])


def log_search(query: str, result_count: int, source: str) -> int:
    """Record a search (no personal data); returns the log id for the result links.

    On PostgreSQL the commit does not wait for the disk (`db.without_waiting_for_disk`): the
    log is analytics, not worth a WAL flush on every search."""
    row = {"query": query[:200], "normalized": normalize(query), "result_count": result_count,
           "source": source, "created_at": utcnow()}
    columns = SearchLog.__table__.c
    values = db.without_waiting_for_disk(
        select(*(literal(value, columns[name].type) for name, value in row.items())))
    return db.session.execute(
        insert(SearchLog).from_select(list(row), values).returning(SearchLog.id)
    ).scalar_one()
