"""Admin: is search running hybrid or keyword-only, are the embeddings caught up, and what
did suggestions learn from customers?"""

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from portal.admin import bp
from portal.auth.views import admin_required
from portal.converters import parse_page
from portal.extensions import db
from portal.forms import PortalForm
from portal.kb.models import Article, ArticleEmbedding, ArticleStatus, IndexQueue
from portal.search import learned, semantic
from portal.search.embeddings import MODEL_ID, WEIGHTS_SHA256

LEARNED_PER_PAGE = 50


class ForgetForm(PortalForm):
    """CSRF only: "Forget" one learned question."""


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
        learned_count=learned.count(),
    )


@bp.route("/search-status/learned")
@admin_required
def learned_questions():
    """The questions customers confirmed an article answered, newest first."""
    questions = learned.page(parse_page(request.args.get("page")), LEARNED_PER_PAGE)
    return render_template("admin/learned_questions.html", questions=questions, form=ForgetForm(),
                           ranking=semantic.ranking_settings())


@bp.route("/search-status/learned/<int:learned_id>/forget", methods=["POST"])
@admin_required
def forget_learned_question(learned_id: int):
    if not ForgetForm().validate_on_submit():
        abort(400)
    if not learned.forget(learned_id):
        abort(404)
    db.session.commit()
    flash("Forgotten: that question no longer lifts its article, and will not be learned "
          "again.", "success")
    return redirect(url_for("admin.learned_questions", page=request.form.get("page", type=int)),
                    code=303)
