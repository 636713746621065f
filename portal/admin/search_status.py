"""Admin: is search running hybrid or keyword-only, and are the embeddings caught up?"""

from flask import render_template
from sqlalchemy import func, select

from portal.admin import bp
from portal.auth.views import admin_required
from portal.extensions import db
from portal.kb.models import Article, ArticleEmbedding, ArticleStatus, IndexQueue
from portal.search import semantic
from portal.search.embeddings import MODEL_ID, WEIGHTS_SHA256


@bp.route("/search-status")
@admin_required
def search_status():
    published = db.session.scalar(
        select(func.count(Article.id)).where(Article.status == ArticleStatus.PUBLISHED))
    embedded_articles, chunks = db.session.execute(
        select(func.count(func.distinct(ArticleEmbedding.article_id)),
               func.count(ArticleEmbedding.id).filter(
                   ArticleEmbedding.chunk >= 0))
        .where(ArticleEmbedding.model == MODEL_ID)).one()
    return render_template(
        "admin/search_status.html",
        status=semantic.status(),
        model_id=MODEL_ID,
        weights_sha256=WEIGHTS_SHA256,
        published=published,
        embedded_articles=embedded_articles,
        missing=len(semantic.missing_article_ids()) if semantic.enabled() else None,
        chunks=chunks,
        queued=db.session.scalar(select(func.count(IndexQueue.article_id))),
        ranking=semantic.ranking_settings(),
    )
