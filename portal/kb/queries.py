"""Read-side queries for KB pages: always through the audience's visibility rules."""

from __future__ import annotations

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.session import make_transient_to_detached

from portal.cluster import changes, memo
from portal.extensions import db
from portal.kb.models import Article, ArticleStatus, KbCategory, KbSection
from portal.search.audience import VISIBLE_TO, Audience

ARTICLES_PER_SECTION_PREVIEW = 3
CATEGORY_PREVIEW = 6


def visible(stmt: Select, audience: Audience) -> Select:
    return stmt.where(Article.status == ArticleStatus.PUBLISHED,
                      Article.visibility.in_(VISIBLE_TO[audience]))


def visible_article(article_id: int, audience: Audience) -> Article | None:
    """The article with its section and category, in one statement."""
    return db.session.scalar(visible(
        select(Article).where(Article.id == article_id)
        .options(joinedload(Article.section).joinedload(KbSection.category)), audience))


def categories_with_sections() -> list[KbCategory]:
    return list(db.session.scalars(
        select(KbCategory).order_by(KbCategory.position, KbCategory.id)
        .options(selectinload(KbCategory.sections))
    ))


def section_choices() -> list[tuple[int, str]]:
    """(section id, "Category › Section") in the order agents see the KB."""
    return [(s.id, f"{c.name} › {s.name}") for c in categories_with_sections()
            for s in c.sections]


def category_choices() -> tuple[tuple[int, str], ...]:
    """The search page's category filter (kept until the knowledge base changes)."""
    return memo.remember(changes.KB, "category_choices", lambda: tuple(
        (row.id, row.name) for row in db.session.execute(
            select(KbCategory.id, KbCategory.name).order_by(KbCategory.position,
                                                            KbCategory.id))))


def section_counts(audience: Audience) -> dict[int, int]:
    rows = db.session.execute(visible(
        select(Article.section_id, func.count(Article.id)).group_by(Article.section_id), audience))
    return dict(rows.all())


def top_articles_per_section(audience: Audience, per_section: int) -> dict[int, list[Article]]:
    """The first few articles of every section in one query (window function, no N+1)."""
    ranked = visible(select(
        Article.id,
        func.row_number().over(
            partition_by=Article.section_id,
            order_by=(Article.promoted.desc(), Article.view_count.desc(), Article.id),
        ).label("rank"),
    ), audience).subquery()
    articles = db.session.scalars(
        select(Article).join(ranked, ranked.c.id == Article.id)
        .where(ranked.c.rank <= per_section)
        .order_by(Article.section_id, ranked.c.rank)
    )
    grouped: dict[int, list[Article]] = {}
    for article in articles:
        grouped.setdefault(article.section_id, []).append(article)
    return grouped


def _with_place(stmt: Select) -> Select:
    return stmt.options(selectinload(Article.section).selectinload(KbSection.category))


def promoted_articles(audience: Audience, limit: int = 6) -> list[Article]:
    return list(db.session.scalars(_with_place(visible(
        select(Article).where(Article.promoted.is_(True))
        .order_by(Article.updated_at.desc()).limit(limit), audience))))


def popular_articles(audience: Audience, limit: int = 6) -> list[Article]:
    return list(db.session.scalars(_with_place(visible(
        select(Article).order_by(Article.view_count.desc(), Article.id).limit(limit), audience))))


def section_articles(section_id: int, audience: Audience) -> list:
    """(id, slug, title, promoted) rows of a section's list, kept while the KB does not
    change (the order does not depend on view counts)."""
    return memo.remember(changes.KB, ("section_articles", section_id, audience), lambda: list(
        db.session.execute(visible(
            select(Article.id, Article.slug, Article.title, Article.promoted)
            .where(Article.section_id == section_id)
            .order_by(Article.promoted.desc(), Article.title), audience))))


def related_articles(article: Article, audience: Audience, limit: int = 5) -> list:
    """Same section first, then similar text found by search (both visibility-filtered)."""
    from portal.search import suggest_articles

    related: dict[int, tuple[str, str]] = {}
    for other in db.session.scalars(visible(
        select(Article).where(Article.section_id == article.section_id, Article.id != article.id)
        .order_by(Article.view_count.desc()).limit(limit), audience,
    )):
        related[other.id] = (other.title, _article_url(other))
    for hit in suggest_articles(f"{article.title} {article.labels}", audience, limit=limit + 1):
        if hit.article_id != article.id and len(related) < limit * 2:
            related.setdefault(hit.article_id, (hit.title, hit.url))
    return [{"title": title, "url": url} for title, url in list(related.values())[:limit]]


def _article_url(article: Article) -> str:
    from flask import url_for

    return url_for("kb.article", article_id=article.id, slug=article.slug)


# --- what KB pages show, kept while the KB does not change -----------------------------------
# Every ORM write of an article, section or category records the KB topic in the change feed:
# the cached lists below are rebuilt after it, at once in the writing process and within
# about a second on every other process and host. View counts (the "most viewed" order) are
# written without the ORM, so lists ordered by them are also rebuilt after VIEWS_MAX_AGE.
VIEWS_MAX_AGE = 30.0  # seconds
memo.watch(changes.KB, Article, KbSection, KbCategory)


def overview(audience: Audience, *, home: bool = False) -> dict:
    """Categories, sections, per-section counts and previews (and on the home page promoted
    and most-viewed articles). The objects are read-only once cached (their session is gone,
    every attribute a page shows is loaded)."""
    def build() -> dict:
        value = {
            "categories": categories_with_sections(),
            "counts": section_counts(audience),
            "previews": top_articles_per_section(audience, ARTICLES_PER_SECTION_PREVIEW),
        }
        if home:
            value["promoted"] = promoted_articles(audience)
            value["popular"] = popular_articles(audience)
        return value

    return memo.remember(changes.KB, ("overview", audience, home), build,
                         max_age=VIEWS_MAX_AGE)


def category_page(audience: Audience) -> dict:
    """What a category page lists under its sections: counts and the top six of each."""
    return memo.remember(changes.KB, ("category", audience), lambda: {
        "counts": section_counts(audience),
        "previews": top_articles_per_section(audience, CATEGORY_PREVIEW),
    }, max_age=VIEWS_MAX_AGE)


def category_with_sections(category_id: int) -> KbCategory | None:
    """A category page's category and its sections (one statement on a change of the KB,
    none until the next): detached, every attribute the page shows loaded."""
    def build() -> KbCategory | None:
        category = db.session.scalar(select(KbCategory).where(KbCategory.id == category_id)
                                     .options(joinedload(KbCategory.sections)))
        if category is not None:
            for section in category.sections:
                db.session.expunge(section)
            db.session.expunge(category)
        return category

    return memo.remember(changes.KB, ("category_row", category_id), build)


def section_with_category(section_id: int) -> KbSection | None:
    """A section page's section and its category, kept like `category_with_sections`."""
    def build() -> KbSection | None:
        section = db.session.scalar(select(KbSection).where(KbSection.id == section_id)
                                    .options(joinedload(KbSection.category)))
        if section is not None:
            db.session.expunge(section.category)
            db.session.expunge(section)
        return section

    return memo.remember(changes.KB, ("section_row", section_id), build)


def article_page(article_id: int, audience: Audience) -> Article | None:
    """An article page's article with its section and category, kept like the lists above
    for visitors and customers: no statement for a page view until the KB changes. Agents,
    who are shown its vote and view counts (written around the ORM, no KB change), read it
    afresh. Detached and read-only, built from one row: never the request's own instances
    (expunging those would take them from it); a request that changes the article loads its
    own (`visible_article`). The Markdown source is kept only when the page needs it (no
    stored HTML), which also halves what a process keeps per article."""
    if audience == Audience.AGENTS:
        return visible_article(article_id, audience)
    articles, sections, categories = (Article.__table__, KbSection.__table__,
                                      KbCategory.__table__)
    shown = [column for column in articles.c if column.key != "body"]
    markdown = case((articles.c.body_html.is_(None), articles.c.body)).label("markdown")

    def build() -> Article | None:
        row = db.session.execute(visible(
            select(*shown, markdown, sections, categories)
            .join(sections, sections.c.id == articles.c.section_id)
            .join(categories, categories.c.id == sections.c.category_id)
            .where(articles.c.id == article_id), audience)).first()
        if row is None:
            return None
        article = _detached(Article, row, shown)
        if row.markdown is not None:
            set_committed_value(article, "body", row.markdown)
        section = _detached(KbSection, row, sections.c)
        set_committed_value(section, "category", _detached(KbCategory, row, categories.c))
        set_committed_value(article, "section", section)
        return article

    return memo.remember(changes.KB, ("article", article_id, audience), build,
                         max_age=VIEWS_MAX_AGE)


def _detached(model, row, columns):
    """A detached `model` whose `columns` hold the row's values (set as loaded: no events,
    no change history)."""
    obj = model()
    for column in columns:
        set_committed_value(obj, column.key, row._mapping[column])
    make_transient_to_detached(obj)
    return obj


def related(article: Article, audience: Audience) -> list[dict]:
    """`related_articles`, kept per article and audience while the KB does not change."""
    return memo.remember(changes.KB, ("related", article.id, audience),
                         lambda: related_articles(article, audience), max_age=VIEWS_MAX_AGE)


def warm_up(app) -> None:
    """Compile an article page's statements and answer its related-articles question once
    (gunicorn's master, before forking: a worker's first article page is then not slower
    than its next ones), through the functions the page calls: `article_page`'s statement
    (compiling it was 26 of a worker's first article page's 54 ms CPU when only
    `visible_article`, which agents' pages use, was warmed), `related`, the reader's vote.
    The values they remember stay in the master (a forked worker's memo starts afresh).
    Never raises."""
    import logging

    from portal.kb.services import current_vote
    from portal.search.audience import Audience

    try:
        with app.test_request_context():
            first = db.session.scalar(visible(select(Article.id), Audience.PUBLIC).limit(1))
            if first is not None:
                visible_article(first, Audience.PUBLIC)
                article = article_page(first, Audience.PUBLIC)
                if article is not None:
                    related(article, Audience.PUBLIC)
                    current_vote(article, "v:warm-up")
            db.session.rollback()
    except Exception:  # a server that cannot warm up still serves
        logging.getLogger(__name__).exception("knowledge-base warm-up failed")
