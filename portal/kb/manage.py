"""Agent KB management at /agent/kb: articles, revisions, categories/sections, reports."""

from __future__ import annotations

import difflib

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from portal.auth.views import agent_required
from portal.converters import parse_id, parse_page
from portal.extensions import db
from portal.forms import select_options
from portal.htmx import wants_partial
from portal.kb import manage_bp as bp
from portal.kb import queries, reports, services
from portal.kb.forms import (
    ActionForm,
    ArticleForm,
    CategoryForm,
    MoveArticlesForm,
    PreviewForm,
    SectionForm,
    VersionForm,
)
from portal.kb.markdown import render_markdown
from portal.kb.models import (
    Article,
    ArticleRevision,
    ArticleStatus,
    ArticleVote,
    KbCategory,
    KbSection,
    Visibility,
)

PER_PAGE = 25


def _section_choices():
    return select_options(queries.section_choices())


def _article_or_404(article_id: int) -> Article:
    return db.session.get(Article, article_id) or abort(404)


# --- article list -------------------------------------------------------------------------

@bp.route("/")
@agent_required
def index():
    status = request.args.get("status", "")
    visibility = request.args.get("visibility", "")
    section_id = parse_id(request.args.get("section"))
    text = request.args.get("q", "").strip()[:200]
    page = parse_page(request.args.get("page"))
    stmt = select(Article)
    if status in {s.value for s in ArticleStatus}:
        stmt = stmt.where(Article.status == status)
    if visibility in {v.value for v in Visibility}:
        stmt = stmt.where(Article.visibility == visibility)
    if section_id:
        stmt = stmt.where(Article.section_id == section_id)
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Article.title.ilike(like), Article.labels.ilike(like)))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    articles = db.session.scalars(
        stmt.options(selectinload(Article.section).selectinload(KbSection.category),
                     selectinload(Article.author))
        .order_by(Article.updated_at.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    move_form = MoveArticlesForm()
    move_form.section_id.choices = _section_choices()
    return render_template(
        "agent/kb/index.html", articles=articles, total=total, page=page,
        pages=max(1, -(-total // PER_PAGE)), status=status, visibility=visibility,
        section_id=section_id, text=text, sections=queries.section_choices(), move_form=move_form,
    )


@bp.route("/move", methods=["POST"])
@agent_required
def move_articles():
    form = MoveArticlesForm()
    form.section_id.choices = _section_choices()
    ids = [i for i in map(parse_id, request.form.getlist("article_ids")) if i is not None]
    if not form.validate_on_submit() or not ids:
        flash("Choose at least one article and a section to move them to.", "error")
        return redirect(url_for("kb_manage.index"))
    section = db.session.get(KbSection, form.section_id.data) or abort(404)
    moved = services.move_articles(ids, section, current_user)
    db.session.commit()
    flash(f"Moved {moved} article{'s' if moved != 1 else ''} to {section.name}.", "success")
    return redirect(url_for("kb_manage.index", section=section.id))


# --- create / edit ------------------------------------------------------------------------

ACTIONS = {
    "save": None,  # keep the current status
    "draft": ArticleStatus.DRAFT,
    "publish": ArticleStatus.PUBLISHED,
}


def _input(form: ArticleForm) -> services.ArticleInput:
    return services.ArticleInput(
        title=form.title.data, body=form.body.data or "", section_id=form.section_id.data,
        labels=form.labels.data or "", visibility=Visibility(form.visibility.data),
        promoted=bool(form.promoted.data),
    )


def _render_editor(form, article=None, conflict=None, preview=None, status=400):
    code = status if request.method == "POST" else 200
    return render_template("agent/kb/edit.html", form=form, article=article, conflict=conflict,
                           preview=preview, status_form=VersionForm()), code


@bp.route("/new", methods=["GET", "POST"])
@agent_required
def new():
    form = ArticleForm()
    form.section_id.choices = _section_choices()
    if not form.section_id.choices:
        flash("Create a category and a section first.", "info")
        return redirect(url_for("kb_manage.categories"))
    if request.method == "GET" and (section_id := parse_id(request.args.get("section"))):
        form.section_id.data = section_id
    action = request.form.get("action", "save")
    if action == "preview":
        return _render_editor(form, preview=render_markdown(form.body.data or ""), status=200)
    if form.validate_on_submit():
        status = ACTIONS.get(action) or ArticleStatus.DRAFT
        article = services.create_article(_input(form), current_user, status=status,
                                          note=form.note.data or "Created")
        db.session.commit()
        flash("Article published." if status == ArticleStatus.PUBLISHED
              else "Draft saved.", "success")
        return redirect(url_for("kb_manage.edit", article_id=article.id))
    return _render_editor(form)


@bp.route("/<int:article_id>/edit", methods=["GET", "POST"])
@agent_required
def edit(article_id: int):
    article = _article_or_404(article_id)
    form = ArticleForm(obj=article if request.method == "GET" else None)
    form.section_id.choices = _section_choices()
    if request.method == "GET":
        form.visibility.data = article.visibility.value
        form.version.data = str(article.version)
    action = request.form.get("action", "save")
    if action == "preview":
        return _render_editor(form, article, preview=render_markdown(form.body.data or ""),
                              status=200)
    if form.validate_on_submit():
        expected = parse_id(form.version.data)
        expected = -1 if expected is None else expected
        try:
            services.update_article(article, _input(form), current_user, expected,
                                    status=ACTIONS.get(action), note=form.note.data or "Edited")
        except services.ConflictError as conflict:
            db.session.rollback()
            return _render_editor(form, article, conflict=_conflict_info(article, form, conflict),
                                  status=409)
        db.session.commit()
        flash("Article saved." if action == "save" else
              ("Article published." if action == "publish" else "Article moved to drafts."),
              "success")
        return redirect(url_for("kb_manage.edit", article_id=article.id))
    return _render_editor(form, article)


def _conflict_info(article: Article, form: ArticleForm, conflict: services.ConflictError):
    """What the other agent saved, as a diff against the text in this form."""
    db.session.refresh(article)
    return {
        "editor": conflict.editor or "Another agent",
        "version": article.version,
        "diff": _diff(article.body, form.body.data or "", "their saved version",
                      "your text (not saved)"),
    }


@bp.route("/preview", methods=["POST"])
@agent_required
def preview():
    """Live Markdown preview for the editor (htmx posts the textarea)."""
    form = PreviewForm()
    if not form.validate_on_submit():
        return render_template("agent/kb/_preview.html", preview=None), 400
    return render_template("agent/kb/_preview.html", preview=render_markdown(form.body.data or ""))


STATUS_ACTIONS = {
    "publish": ArticleStatus.PUBLISHED,
    "unpublish": ArticleStatus.DRAFT,
    "archive": ArticleStatus.ARCHIVED,
}


@bp.route("/<int:article_id>/status/<action>", methods=["POST"])
@agent_required
def change_status(article_id: int, action: str):
    article = _article_or_404(article_id)
    status = STATUS_ACTIONS.get(action) or abort(404)
    form = VersionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.change_status(article, status, current_user, form.version.data)
    except services.ConflictError:
        db.session.rollback()
        flash("Someone changed this article meanwhile; nothing was changed. Check the latest "
              "version and try again.", "error")
        return redirect(url_for("kb_manage.edit", article_id=article.id))
    db.session.commit()
    flash(services.STATUS_NOTES[status] + ".", "success")
    return redirect(url_for("kb_manage.edit", article_id=article.id))


# --- history ------------------------------------------------------------------------------

def _diff(old: str, new: str, old_label: str, new_label: str) -> list[tuple[str, str]]:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label,
                                 lineterm="", n=3)
    styled = []
    for line in lines:
        kind = ("hunk" if line.startswith("@@") else "add" if line.startswith("+")
                else "del" if line.startswith("-") else "ctx")
        styled.append((kind, line))
    return styled


@bp.route("/<int:article_id>/history")
@agent_required
def history(article_id: int):
    article = _article_or_404(article_id)
    revisions = db.session.scalars(
        select(ArticleRevision).where(ArticleRevision.article_id == article.id)
        .options(selectinload(ArticleRevision.author))
        .order_by(ArticleRevision.number.desc())
    ).all()
    by_number = {r.number: r for r in revisions}
    newest = revisions[0].number if revisions else 0
    a = parse_id(request.args.get("a"))
    b = parse_id(request.args.get("b"))
    diff = None
    if a in by_number and b in by_number:
        old, new = by_number[min(a, b)], by_number[max(a, b)]
        diff = _diff(f"# {old.title}\n\n{old.body}", f"# {new.title}\n\n{new.body}",
                     f"revision {old.number}", f"revision {new.number}")
    return render_template("agent/kb/history.html", article=article, revisions=revisions,
                           diff=diff, a=a or (newest - 1 if newest > 1 else newest),
                           b=b or newest, form=VersionForm())


@bp.route("/<int:article_id>/revisions/<int:number>/restore", methods=["POST"])
@agent_required
def restore(article_id: int, number: int):
    article = _article_or_404(article_id)
    revision = db.session.scalar(select(ArticleRevision).where(
        ArticleRevision.article_id == article.id, ArticleRevision.number == number)) or abort(404)
    form = VersionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.restore_revision(article, revision, current_user, form.version.data)
    except services.ConflictError:
        db.session.rollback()
        flash("The article changed since you opened its history; nothing was restored.",
              "error")
        return redirect(url_for("kb_manage.history", article_id=article.id))
    db.session.commit()
    flash(f"Revision {number} restored as revision {article.version}.", "success")
    return redirect(url_for("kb_manage.history", article_id=article.id))


# --- categories and sections --------------------------------------------------------------

@bp.route("/categories", methods=["GET", "POST"])
@agent_required
def categories():
    category_form = CategoryForm(prefix="cat")
    section_form = SectionForm(prefix="sec")
    cats = queries.categories_with_sections()
    section_form.category_id.choices = select_options((c.id, c.name) for c in cats)
    status = 200
    if request.method == "POST":
        kind = request.form.get("kind")
        if kind == "category" and category_form.validate_on_submit():
            services.create_category(category_form.name.data, category_form.description.data)
            db.session.commit()
            flash(f"Category “{category_form.name.data}” created.", "success")
            return redirect(url_for("kb_manage.categories"))
        if kind == "section" and section_form.validate_on_submit():
            cat = db.session.get(KbCategory, section_form.category_id.data) or abort(404)
            services.create_section(cat, section_form.name.data, section_form.description.data)
            db.session.commit()
            flash(f"Section “{section_form.name.data}” created in {cat.name}.", "success")
            return redirect(url_for("kb_manage.categories"))
        status = 400
    counts = dict(db.session.execute(
        select(Article.section_id, func.count(Article.id)).group_by(Article.section_id)).all())
    return render_template("agent/kb/categories.html", categories=cats, counts=counts,
                           category_form=category_form, section_form=section_form,
                           action_form=ActionForm()), status


@bp.route("/categories/<int:category_id>/edit", methods=["GET", "POST"])
@agent_required
def edit_category(category_id: int):
    cat = db.session.get(KbCategory, category_id) or abort(404)
    form = CategoryForm(obj=cat)
    if form.validate_on_submit():
        services.update_category(cat, form.name.data, form.description.data)
        db.session.commit()
        flash("Category saved.", "success")
        return redirect(url_for("kb_manage.categories"))
    return render_template("agent/kb/edit_group.html", form=form, thing="category", item=cat), \
        400 if request.method == "POST" else 200


@bp.route("/sections/<int:section_id>/edit", methods=["GET", "POST"])
@agent_required
def edit_section(section_id: int):
    sec = db.session.get(KbSection, section_id) or abort(404)
    form = SectionForm(obj=sec)
    form.category_id.choices = select_options(
        (c.id, c.name) for c in queries.categories_with_sections())
    if form.validate_on_submit():
        services.update_section(sec, form.name.data, form.description.data,
                                form.category_id.data)
        db.session.commit()
        flash("Section saved.", "success")
        return redirect(url_for("kb_manage.categories"))
    return render_template("agent/kb/edit_group.html", form=form, thing="section", item=sec), \
        400 if request.method == "POST" else 200


@bp.route("/<kind>/<int:item_id>/move/<direction>", methods=["POST"])
@agent_required
def reorder(kind: str, item_id: int, direction: str):
    if kind not in ("categories", "sections") or direction not in ("up", "down"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    if kind == "categories":
        item = db.session.get(KbCategory, item_id) or abort(404)
        siblings = queries.categories_with_sections()
    else:
        item = db.session.get(KbSection, item_id) or abort(404)
        siblings = list(item.category.sections)
    services.move(siblings, item, -1 if direction == "up" else 1)
    db.session.commit()
    return redirect(url_for("kb_manage.categories") + f"#{kind}-{item_id}")


# --- report -------------------------------------------------------------------------------

@bp.route("/report")
@agent_required
def report():
    days = request.args.get("days", 30, type=int)
    days = days if days in (7, 30, 90) else 30
    return render_template("agent/kb/report.html", days=days, **reports.kb_report(days),
                           reason_labels=services.VOTE_REASONS)


@bp.route("/reviews/<int:vote_id>/done", methods=["POST"])
@agent_required
def review_done(vote_id: int):
    vote = db.session.get(ArticleVote, vote_id) or abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    vote.review_done = True
    db.session.commit()
    if wants_partial(f"review-{vote.id}"):
        return ""
    flash("Marked as reviewed.", "success")
    return redirect(url_for("kb_manage.report") + "#needs-review")
