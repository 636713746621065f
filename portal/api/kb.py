"""Knowledge-base endpoints: read through the audience's visibility rules, write through
`portal.kb.services` (revisions, the index queue and version checks included)."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from portal.api import representations as rep
from portal.api import schemas
from portal.api.core import (
    Problem,
    blp,
    check_if_match,
    keyset_page,
    not_found,
    page_body,
    require,
    writes,
)
from portal.extensions import db
from portal.kb import queries
from portal.kb import services as kb_services
from portal.kb.models import Article, ArticleStatus, KbCategory, KbSection, Visibility
from portal.search.audience import audience_for
from portal.search.service import search_articles

TAG = ["Knowledge base"]


def _article_etag(article: Article) -> str:
    return f'"v{article.version}"'


def _readable_article(article_id: int, user) -> Article:
    if user.is_agent:  # staff see drafts and archived articles too, as in the KB editor
        article = db.session.get(Article, article_id)
    else:
        article = queries.visible_article(article_id, audience_for(user))
    if article is None:
        raise not_found("article")
    return article


@blp.route("/kb/categories", methods=["GET"])
@blp.doc(tags=TAG, summary="Categories with their sections")
@blp.response(200, schemas.CategoryList)
def list_categories():
    require("kb:read")
    return {"data": [{
        "id": c.id, "name": c.name, "slug": c.slug, "description": c.description,
        "sections": [_section_json(s) for s in c.sections],
    } for c in queries.categories_with_sections()]}


def _section_json(s: KbSection) -> dict:
    return {"id": s.id, "name": s.name, "slug": s.slug, "description": s.description,
            "category_id": s.category_id}


@blp.route("/kb/categories", methods=["POST"])
@blp.doc(tags=TAG, summary="Create a category (staff)")
@writes
@blp.arguments(schemas.CategoryCreate)
@blp.response(201, schemas.CategoryOut)
def create_category(data):
    require("kb:write", staff=True)
    category = kb_services.create_category(data["name"], data["description"])
    return {"id": category.id, "name": category.name, "slug": category.slug,
            "description": category.description, "sections": []}, 201


@blp.route("/kb/sections", methods=["POST"])
@blp.doc(tags=TAG, summary="Create a section in a category (staff)")
@writes
@blp.arguments(schemas.SectionCreate)
@blp.response(201, schemas.SectionOut)
def create_section(data):
    require("kb:write", staff=True)
    category = db.session.get(KbCategory, data["category_id"])
    if category is None:
        raise Problem(422, "No such category.", errors=[
            {"field": "category_id", "message": "No such category."}])
    return _section_json(kb_services.create_section(category, data["name"],
                                                    data["description"])), 201


@blp.route("/kb/articles", methods=["GET"])
@blp.doc(tags=TAG, summary="Articles, most recently updated first")
@blp.arguments(schemas.ArticleListArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.ArticlePage)
def list_articles(cursor=None, limit=25, section_id=None, status=None):
    user = require("kb:read")
    stmt = select(Article)
    if not user.is_agent:
        stmt = queries.visible(stmt, audience_for(user))
    elif status:
        stmt = stmt.where(Article.status == ArticleStatus(status))
    if section_id:
        stmt = stmt.where(Article.section_id == section_id)
    rows, next_cursor = keyset_page(stmt, Article.updated_at, Article.id, cursor=cursor,
                                    limit=limit)
    return page_body([rep.article(a) for a in rows], next_cursor, "api.list_articles")


@blp.route("/kb/articles/<int:article_id>", methods=["GET"])
@blp.doc(tags=TAG, summary="Get an article (ETag is its version)")
@blp.response(200, schemas.ArticleOut)
def get_article(article_id: int):
    article = _readable_article(article_id, require("kb:read"))
    return rep.article(article), 200, {"ETag": _article_etag(article)}


def _section(section_id: int) -> KbSection:
    section = db.session.get(KbSection, section_id)
    if section is None:
        raise Problem(422, "No such section.", errors=[
            {"field": "section_id", "message": "No such section."}])
    return section


@blp.route("/kb/articles", methods=["POST"])
@blp.doc(tags=TAG, summary="Create a draft article (staff)")
@writes
@blp.arguments(schemas.ArticleCreate)
@blp.response(201, schemas.ArticleOut)
def create_article(data):
    user = require("kb:write", staff=True)
    _section(data["section_id"])
    article = kb_services.create_article(kb_services.ArticleInput(
        title=data["title"], body=data["body"], section_id=data["section_id"],
        labels=", ".join(data["labels"]), visibility=Visibility(data["visibility"]),
        promoted=data["promoted"]), user)
    return rep.article(article), 201, {
        "ETag": _article_etag(article),
        "Location": url_for("api.get_article", article_id=article.id)}


@blp.route("/kb/articles/<int:article_id>", methods=["PATCH"])
@blp.doc(tags=TAG, summary="Edit an article: a new revision (If-Match: its ETag)")
@writes
@blp.arguments(schemas.ArticleUpdate)
@blp.response(200, schemas.ArticleOut)
def update_article(data, article_id: int):
    user = require("kb:write", staff=True)
    article = _readable_article(article_id, user)
    check_if_match(_article_etag(article))
    if "section_id" in data:
        _section(data["section_id"])
    labels = ", ".join(data["labels"]) if "labels" in data else article.labels
    kb_services.update_article(article, kb_services.ArticleInput(
        title=data.get("title", article.title), body=data.get("body", article.body),
        section_id=data.get("section_id", article.section_id), labels=labels,
        visibility=Visibility(data.get("visibility", article.visibility.value)),
        promoted=data.get("promoted", article.promoted)), user, article.version,
        note="Edited (API)")
    return rep.article(article), 200, {"ETag": _article_etag(article)}


@blp.route("/kb/articles/<int:article_id>/publish", methods=["POST"])
@blp.doc(tags=TAG, summary="Publish an article (staff)")
@writes
@blp.response(200, schemas.ArticleOut)
def publish_article(article_id: int):
    user = require("kb:write", staff=True)
    article = _readable_article(article_id, user)
    check_if_match(_article_etag(article))
    if article.status != ArticleStatus.PUBLISHED:
        kb_services.change_status(article, ArticleStatus.PUBLISHED, user, article.version)
    return rep.article(article), 200, {"ETag": _article_etag(article)}


@blp.route("/search", methods=["GET"])
@blp.doc(tags=TAG, summary="Search articles: the portal's ranking and visibility rules")
@blp.arguments(schemas.SearchArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.SearchOut)
def search(q: str, limit: int = 10):
    user = require("kb:read")
    results = search_articles(q, audience_for(user), per_page=limit)
    return {"query": results.query, "total": results.total, "data": [{
        "article_id": h.article_id, "title": h.title, "url": h.url, "section": h.section,
        "category": h.category, "snippet": str(h.snippet_html.striptags()), "score": h.score,
    } for h in results.hits]}
