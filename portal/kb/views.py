"""Public knowledge-base pages: home, categories, sections, articles, search, votes."""

from __future__ import annotations

from flask import abort, current_app, g, redirect, render_template, request, url_for
from flask_login import current_user

from portal import limits
from portal.converters import parse_id, parse_page
from portal.extensions import db
from portal.forms import strip_control
from portal.htmx import render_page_or_partial, wants_partial
from portal.kb import bp, public_bp, queries, services
from portal.kb.forms import VoteForm
from portal.search import audience_for, search_articles
from portal.search.semantic import applies_to as semantic_applies

VISITOR_COOKIE = "portal_vid"
VISITOR_COOKIE_AGE = 2 * 365 * 24 * 3600
INSTANT_LIMIT = 8


def _audience():
    return audience_for(current_user)


def _viewer_key(create: bool) -> str | None:
    """"u:<id>" for signed-in users, "v:<random>" from a long-lived cookie for visitors."""
    if current_user.is_authenticated:
        return f"u:{current_user.id}"
    vid = request.cookies.get(VISITOR_COOKIE, "")
    if not (16 <= len(vid) <= 40 and vid.replace("-", "").replace("_", "").isalnum()):
        if not create:
            return None
        vid = g.setdefault("new_visitor_id", services.new_visitor_id())
    return f"v:{vid}"


@public_bp.after_app_request
def _set_visitor_cookie(response):
    vid = g.pop("new_visitor_id", None)
    if vid:
        response.set_cookie(VISITOR_COOKIE, vid, max_age=VISITOR_COOKIE_AGE, httponly=True,
                            samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


@public_bp.route("/")
def index():
    return render_template("kb/home.html", **queries.overview(_audience(), home=True))


@bp.route("/")
def home():
    return render_template("kb/overview.html", **queries.overview(_audience()))


def _canonical(endpoint: str, slug: str, expected: str, **ids):
    if slug != expected:
        return redirect(url_for(endpoint, slug=expected, **ids, **request.args), 301)
    return None


@bp.route("/categories/<int:category_id>-<slug>")
def category(category_id: int, slug: str):
    cat = queries.category_with_sections(category_id) or abort(404)
    moved = _canonical("kb.category", slug, cat.slug, category_id=cat.id)
    if moved:
        return moved
    return render_template("kb/category.html", category=cat,
                           **queries.category_page(_audience()))


@bp.route("/sections/<int:section_id>-<slug>")
def section(section_id: int, slug: str):
    sec = queries.section_with_category(section_id) or abort(404)
    moved = _canonical("kb.section", slug, sec.slug, section_id=sec.id)
    if moved:
        return moved
    return render_template("kb/section.html", section=sec,
                           articles=queries.section_articles(sec.id, _audience()))


@bp.route("/articles/<int:article_id>-<slug>")
def article(article_id: int, slug: str):
    audience = _audience()
    art = queries.article_page(article_id, audience) or abort(404)
    moved = _canonical("kb.article", slug, art.slug, article_id=art.id)
    if moved:
        return moved
    viewer = _viewer_key(create=True)
    services.record_view(art, viewer, parse_id(request.args.get("from_search")))
    # A visitor whose id this response gives has voted on nothing: no need to look.
    vote = None if g.get("new_visitor_id") else services.current_vote(art, viewer)
    return _article_page(art, audience, vote, VoteForm())


def _article_page(art, audience, vote, form, refusal: str | None = None):
    return render_template(
        "kb/article.html", article=art, rendered=art.rendered,
        related=queries.related(art, audience), vote=vote, form=form,
        reasons=services.VOTE_REASONS, refusal=refusal,
    )


@bp.route("/articles/<int:article_id>/vote", methods=["POST"])
def vote(article_id: int):
    audience = _audience()
    art = queries.visible_article(article_id, audience) or abort(404)
    form = VoteForm()
    viewer = _viewer_key(create=True)
    valid = form.validate_on_submit()
    refusal = limits.refused("vote") if valid else None
    if valid and refusal is None:
        current = services.cast_vote(art, viewer, form.helpful.data == "yes", form.reason.data,
                                     form.comment.data or "")
        db.session.commit()
    else:
        current = services.current_vote(art, viewer)
    status = 429 if refusal else 200
    if wants_partial("article-feedback"):
        return render_template("kb/_feedback.html", article=art, vote=current, form=form,
                               reasons=services.VOTE_REASONS, refusal=refusal), status
    if refusal:  # the article again, the typed comment still in its box
        return _article_page(art, audience, current, form, refusal), status
    return redirect(url_for("kb.article", article_id=art.id, slug=art.slug) + "#article-feedback")


def _search_params():
    query = strip_control(request.args.get("q", "")[:1000])
    page = parse_page(request.args.get("page"))
    category_id = parse_id(request.args.get("category"))
    return query, page, category_id


def _log(query: str, total: int, source: str) -> int | None:
    if not query.strip():
        return None
    with db.writing_one_statement():
        return services.log_search(query, total, source)


@bp.route("/search")
def search():
    query, page, category_id = _search_params()
    results = None
    log_id = None
    refusal = limits.refused("search") if query.strip() else None
    if query.strip() and refusal is None:
        results = search_articles(query, _audience(), page=page, category_id=category_id)
        log_id = _log(query, results.total, "search")
    return render_page_or_partial(
        "kb/search.html", "kb/_search_results.html", "search-results",
        query=query, results=results, log_id=log_id, category_id=category_id,
        categories=queries.category_choices(), refusal=refusal,
    ), 429 if refusal else 200


@bp.route("/search/instant")
def instant():
    """Results while typing (htmx), by keywords; once the person pauses, the partial asks
    again with `meaning=1` for results ranked by meaning too (the model runs once per pause,
    not per keystroke). Without htmx the full search page answers."""
    query, _page, category_id = _search_params()
    if not wants_partial("instant-results"):
        return redirect(url_for("kb.search", q=query or None, category=category_id))
    meaning = request.args.get("meaning") == "1"
    results = refine_url = None
    log_id = parse_id(request.args.get("log")) if meaning else None
    refusal = limits.refused("search") if query.strip() and not meaning else None
    if query.strip() and refusal is None:
        results = search_articles(query, _audience(), per_page=INSTANT_LIMIT,
                                  category_id=category_id, instant=True, meaning=meaning)
        if not meaning:
            log_id = _log(query, results.total, "instant")
            if semantic_applies(query):
                refine_url = url_for("kb.instant", q=query, category=category_id, meaning=1,
                                     log=log_id)
    return render_template("kb/_instant.html", query=query, results=results, log_id=log_id,
                           category_id=category_id, refine_url=refine_url,
                           refusal=refusal), 429 if refusal else 200
