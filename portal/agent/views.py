"""Agent workspace pages: thin views over portal.agent services."""

from __future__ import annotations

import csv
import io
import weakref
from collections import OrderedDict
from urllib.parse import parse_qsl, urlsplit

from flask import (
    Response,
    abort,
    current_app,
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from portal.agent import articles, bp, jobs, services
from portal.agent import queue as queues
from portal.agent import reports as metrics
from portal.agent.charts import daily_chart
from portal.agent.forms import (
    ArticleDraftForm,
    BulkForm,
    MergeForm,
    PropertiesForm,
    ReplyForm,
)
from portal.auth.views import agent_required
from portal.cluster import memo
from portal.converters import parse_id
from portal.db import utcnow
from portal.extensions import db
from portal.forms import select_options
from portal.htmx import render_page_or_partial, wants_partial
from portal.inbound import services as inbound_services
from portal.kb import queries as kb_queries
from portal.kb.models import Article, ArticleStatus, Visibility
from portal.mail.services import failed_for_ticket
from portal.tickets.attachments import stored_path
from portal.tickets.models import (
    Attachment,
    CannedReply,
    Priority,
    Status,
    Ticket,
    TicketType,
)


def _choices():
    """Lists for filter and property selects (cached until one changes)."""
    lists = services.choice_lists()
    return {name: lists[name] for name in ("groups", "categories", "agents")}


# --- queue ----------------------------------------------------------------------------------


@bp.route("/")
@agent_required
def queue():
    jobs.sweep_if_due()
    return _queue_page(request.args)


def _bulk_form(agents, submitted: bool = False) -> BulkForm:
    form = BulkForm() if submitted else BulkForm(formdata=None)
    form.assignee.choices = select_options(
        [("", "— no change —"), ("0", "Unassigned")] + [(str(a.id), a.name) for a in agents]
    )
    return form


def _untouched_bulk_fields(agents) -> Markup:
    """The bulk form's fields before anything is typed: rendered once per process until the
    agent list changes (building and rendering the form was a tenth of the queue page)."""
    return memo.remember(services.CHOICES, "bulk-fields", lambda: Markup(  # noqa: S704
        render_template("agent/_bulk_fields.html", bulk=_bulk_form(agents))))  # (autoescaped)


def _queue_page(args, *, bulk: BulkForm | None = None, bulk_error: str = "",
                selected: frozenset[int] = frozenset(), status: int = 200):
    """The queue for these query arguments; a bulk form that failed comes back with what was
    typed and the tickets still ticked."""
    query = queues.QueueQuery.from_args(args)
    # The tabs are not part of the htmx partial: skip their counts there.
    counts = {} if wants_partial("queue-results") else queues.view_counts(current_user)
    results = queues.fetch_page(query, current_user, counts=counts)
    choices = _choices()
    bulk_fields = None if bulk else _untouched_bulk_fields(choices["agents"])
    page = render_page_or_partial(
        "agent/queue.html",
        "agent/_queue_results.html",
        "queue-results",
        query=query,
        results=results,
        counts=counts,
        views=queues.VIEWS,
        sorts=queues.SORTS,
        bulk=bulk,
        bulk_fields=bulk_fields,
        bulk_error=bulk_error,
        selected=selected,
        statuses=list(Status),
        priorities=list(Priority),
        types=list(TicketType),
        now=utcnow(),
        **choices,
    )
    return page, status


@bp.post("/bulk")
@agent_required
def bulk_update():
    form = _bulk_form(services.choice_lists()["agents"], submitted=True)
    back = request.form.get("back", "")
    back = back if back.startswith("/agent/") and not back.startswith("//") else url_for(
        "agent.queue"
    )

    def numbers(name: str) -> list[int]:
        return [i for i in map(parse_id, request.form.getlist(name)) if i is not None]

    ids = numbers("on_page" if request.form.get("scope") == "page" else "ticket")

    def shown_again(error: str):
        status = 200 if request.headers.get("HX-Request") else 422
        return _queue_page(MultiDict(parse_qsl(urlsplit(back).query)), bulk=form,
                           bulk_error=error, selected=frozenset(numbers("ticket")),
                           status=status)

    if not form.validate_on_submit():
        return shown_again("That bulk action could not be read; check the fields below.")
    if not ids:
        return shown_again("Select at least one ticket.")
    try:
        changes = services.Changes(
            status=Status(form.status.data) if form.status.data else None,
            priority=Priority(form.priority.data) if form.priority.data else None,
            assignee_id=int(form.assignee.data) if form.assignee.data else None,
            add_tags=services.parse_tags(form.add_tags.data or ""),
            remove_tags=services.parse_tags(form.remove_tags.data or ""),
        )
    except services.ActionError as exc:
        return shown_again(str(exc))
    updated, problems = services.bulk_update(ids[:500], changes, current_user)
    db.session.commit()
    flash(f"Updated {updated} ticket{'s' if updated != 1 else ''}.", "success")
    for problem in problems[:10]:
        flash(problem, "warning")
    return redirect(back)


# --- one ticket -----------------------------------------------------------------------------


def _load_ticket(ticket_id: int) -> Ticket:
    """The ticket an action works on (what it needs besides is loaded as it goes)."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        abort(404)
    return ticket


def _load_page(ticket_id: int) -> tuple[Ticket, services.TicketPage]:
    """The ticket and everything its page lists (one statement: services.ticket_page)."""
    found = services.ticket_page(ticket_id)
    if found is None:
        abort(404)
    return found


def _properties_form(ticket: Ticket, choices, *, submitted: bool = False,
                     tags: str = "") -> PropertiesForm:
    form = PropertiesForm() if submitted else PropertiesForm(formdata=None)
    form.category.choices = select_options(
        [(0, "— none —")] + [(c.id, c.name) for c in choices["categories"]]
    )
    form.group.choices = select_options(
        [(0, "— none —")] + [(g.id, g.name) for g in choices["groups"]]
    )
    assignees = [(0, "— unassigned —")] + [(a.id, a.name) for a in choices["agents"]]
    active = {a.id for a in choices["agents"]}
    if ticket.assignee_id is not None and ticket.assignee_id not in active:
        assignees.append((ticket.assignee_id, f"{ticket.assignee.name} (inactive)"))
    form.assignee.choices = select_options(assignees)
    if not submitted:
        form.status.data = ticket.status.value
        form.priority.data = ticket.priority.value
        form.type.data = ticket.type.value
        form.category.data = ticket.category_id or 0
        form.group.data = ticket.group_id or 0
        form.assignee.data = ticket.assignee_id or 0
        form.tags.data = tags
    return form


COMPOSE_KEYS = ("body", "canned", "link", "kb_q", "internal", "status_after")


def _compose_url(ticket_id: int, args) -> str:
    """The ticket page with the reply editor's state: only the editor's own keys, since any
    other query key (`ticket_id`, `_external`...) would collide with url_for's arguments."""
    state = {key: args[key] for key in COMPOSE_KEYS if key in args}
    return url_for("agent.ticket", ticket_id=ticket_id, **state) + "#reply"


def _compose(ticket: Ticket, args) -> dict:
    """The reply editor's state from a GET (canned reply or KB link inserted into the text)."""
    body = args.get("body", "")[:50_000]
    canned_id = parse_id(args.get("canned"))
    if canned_id is not None:
        canned = db.session.get(CannedReply, canned_id)
        if canned is not None:
            body = services.insert_canned(body, canned, ticket, current_user)
    link_id = parse_id(args.get("link"))
    if link_id is not None:
        article = db.session.get(Article, link_id)
        if (
            article is not None
            and article.status == ArticleStatus.PUBLISHED
            and article.visibility != Visibility.INTERNAL
        ):
            body = services.insert_link(body, article.title, articles.article_url(article))
    kb_query = args.get("kb_q", "").strip()[:200]
    return {
        "body": body,
        "internal": args.get("internal") in ("y", "on", "1", "true"),
        "status_after": args.get("status_after", ""),
        "kb_query": kb_query,
        "kb_results": articles.kb_links(kb_query) if kb_query else [],
    }


def _reply_form(compose: dict, **options) -> ReplyForm:
    form = ReplyForm(formdata=None, **options)
    form.body.data = compose["body"]
    form.internal.data = compose["internal"]
    form.status_after.data = compose["status_after"]
    return form


PROPERTY_SELECTS = ("status", "priority", "type", "category", "group", "assignee")


def _field(form_field, **kwargs) -> Markup:
    """What `{{ field(f, **kwargs) }}` (templates/_macros/forms.html) writes."""
    return get_template_attribute("_macros/forms.html", "field")(form_field, **kwargs)


def _untouched(key: tuple, render) -> Markup:
    """A properties field of a form nobody has typed in yet, as the page writes it: the same
    on every ticket page with that value, so rendered once per process per field and value
    (again after an agent, group, category or canned reply changes). Rendering the WTForms
    fields (a macro, a label, a widget per field) was a fifth of the ticket page."""
    return memo.remember(services.CHOICES, ("untouched-field", *key), render)


def _property_fields(ticket: Ticket, tags: list[str], choices,
                     form: PropertiesForm | None) -> dict:
    """The properties form's fields, keyed by name: a form sent back with errors is rendered
    as it is; an untouched one's fields come from `_untouched` by value (the form is built
    only when one of them is not remembered yet)."""
    if form is not None:
        return {name: _field(form[name]) for name in PROPERTY_SELECTS} | {
            "tags": _field(form.tags, hint=form.tags.description)}
    values = {"status": ticket.status.value, "priority": ticket.priority.value,
              "type": ticket.type.value, "category": ticket.category_id or 0,
              "group": ticket.group_id or 0, "assignee": ticket.assignee_id or 0,
              "tags": ", ".join(tags)}
    built: list[PropertiesForm] = []

    def render(name: str) -> Markup:
        if not built:
            built.append(_properties_form(ticket, choices, tags=values["tags"]))
        form = built[0]
        if name == "tags":
            return _field(form.tags, hint=form.tags.description)
        return _field(form[name])

    return {name: _untouched(("properties", name, value), lambda name=name: render(name))
            for name, value in values.items()}


def _same_on_every_page() -> dict:
    """What every ticket page writes alike: the blank reply and merge forms (read for their
    names and labels; shared by the process's requests, so never given data: a form with
    data is built for its request), their untouched fields, the canned reply options, the
    placeholder chips and the status badges. Built once per process, again after an agent,
    group, category or canned reply changes; building and rendering them per request was a
    sixth of the page."""
    return memo.remember(services.CHOICES, "ticket-page-parts", _build_same_on_every_page)


def _build_same_on_every_page() -> dict:
    config = current_app.config
    reply = _reply_form({"body": "", "internal": False, "status_after": ""},
                        meta={"csrf": False})  # the template writes the token
    merge = MergeForm(formdata=None, meta={"csrf": False})
    badge = get_template_attribute("agent/_macros.html", "status_badge")
    hint = f"Up to {config['MAX_ATTACHMENTS']} files, {config['MAX_UPLOAD_MB']} MB each."
    return {
        "reply_form": reply,
        "merge_form": merge,
        "reply_fields": {
            "body": _field(reply.body, rows=8, class_="reply-body",
                           placeholder="Write your reply…"),
            "attachments": _field(reply.attachments, hint=hint, class_="attach-field"),
            "status_after": reply.status_after(),
        },
        "merge_target": _field(merge.target, hint=merge.target.description),
        "canned_options": Markup(render_template(  # noqa: S704 (autoescaped template)
            "agent/_canned_options.html",
            canned_replies=services.choice_lists()["canned_replies"])),
        "placeholder_chips": Markup(render_template(  # noqa: S704 (autoescaped template)
            "agent/_placeholder_chips.html", placeholders=services.PLACEHOLDERS)),
        "status_badges": {status: badge(status) for status in Status},
    }


def _ticket_page(ticket: Ticket, page: services.TicketPage, *, reply_form=None,
                 properties_form=None, merge_form=None, merge_target=None, compose=None,
                 status=200):
    choices = _choices()
    parts = _same_on_every_page()
    compose = compose or _compose(ticket, {})
    if reply_form is None:
        typed = compose["body"] or compose["internal"] or compose["status_after"]
        reply_form = _reply_form(compose) if typed else parts["reply_form"]
    merge_form = merge_form or parts["merge_form"]
    merged_into = db.session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    html = render_template(
        "agent/ticket.html",
        ticket=ticket,
        reply_form=reply_form,
        untouched_reply=parts["reply_fields"] if reply_form is parts["reply_form"] else None,
        properties_form=properties_form,
        property_fields=_property_fields(ticket, page.tags, choices, properties_form),
        merge_form=merge_form,
        merge_target_field=parts["merge_target"] if merge_form is parts["merge_form"] else None,
        merge_target=merge_target,
        parts=parts,
        compose=compose,
        page=page,
        merged_into=merged_into,
        undelivered=failed_for_ticket(ticket.id) if page.extras.undelivered else [],
        emails=inbound_services.emails_of(ticket.id) if page.extras.emails else {},
        now=utcnow(),
    )
    return html, status


@bp.route("/tickets/<int:ticket_id>")
@agent_required
def ticket(ticket_id: int):
    if "csrf_token" in request.args:  # a no-JS "insert" button submitted the whole reply form
        return redirect(_compose_url(ticket_id, request.args))
    ticket, page = _load_page(ticket_id)
    now = utcnow()
    if jobs.due_for_check(ticket, now):
        with db.writing():
            jobs.check_ticket(ticket, now)
        ticket, page = _load_page(ticket_id)  # with what the check changed and recorded
    return _ticket_page(ticket, page, compose=_compose(ticket, request.args))


@bp.route("/tickets/<int:ticket_id>/compose")
@agent_required
def compose(ticket_id: int):
    """The reply editor with a canned reply or KB link inserted (htmx swaps it in place)."""
    ticket = _load_ticket(ticket_id)
    state = _compose(ticket, request.args)
    if not wants_partial("reply-editor"):
        return redirect(_compose_url(ticket_id, request.args))
    return render_template("agent/_reply_editor.html", ticket=ticket,
                           reply_form=_reply_form(state), compose=state)


@bp.post("/tickets/<int:ticket_id>/reply")
@agent_required
def reply(ticket_id: int):
    ticket = _load_ticket(ticket_id)
    form = ReplyForm()
    state = _compose(ticket, {})
    if form.validate_on_submit():
        try:
            services.reply(
                ticket,
                current_user,
                form.body.data,
                internal=form.internal.data,
                new_status=Status(form.status_after.data) if form.status_after.data else None,
                files=request.files.getlist(form.attachments.name),
            )
        except (services.ActionError, ValueError) as exc:
            db.session.rollback()
            form.body.errors = [*form.body.errors, str(exc)]
        else:
            db.session.commit()
            flash("Internal note added." if form.internal.data else "Reply sent.", "success")
            return redirect(url_for("agent.ticket", ticket_id=ticket.id))
    state["body"] = form.body.data or ""
    return _ticket_page(*_load_page(ticket_id), reply_form=form, compose=state, status=422)


@bp.post("/tickets/<int:ticket_id>/properties")
@agent_required
def properties(ticket_id: int):
    ticket = _load_ticket(ticket_id)
    choices = _choices()
    form = _properties_form(ticket, choices, submitted=True)
    if form.validate_on_submit():
        try:
            changed = services.apply_changes(
                ticket,
                services.Changes(
                    status=Status(form.status.data),
                    priority=Priority(form.priority.data),
                    type=TicketType(form.type.data),
                    category_id=form.category.data,
                    group_id=form.group.data,
                    assignee_id=form.assignee.data,
                    tags=services.parse_tags(form.tags.data or ""),
                ),
                current_user,
            )
        except services.ActionError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            db.session.commit()
            flash(
                f"Saved: {', '.join(changed)}." if changed else "Nothing changed.",
                "success" if changed else "info",
            )
            return redirect(url_for("agent.ticket", ticket_id=ticket.id))
    return _ticket_page(*_load_page(ticket_id), properties_form=form, status=422)


@bp.post("/tickets/<int:ticket_id>/merge")
@agent_required
def merge(ticket_id: int):
    ticket = _load_ticket(ticket_id)
    form = MergeForm()
    if form.validate_on_submit():
        target = services.find_by_reference(form.target.data)
        if target is None:
            form.target.errors = [*form.target.errors, "No ticket has that reference."]
        elif (services.different_requesters(ticket, target)
              and form.confirmed_for.data != target.reference):
            # Merging into another customer's ticket: an explicit choice first (default: no CC).
            form.confirmed_for.data = target.reference
            form.requester_access.data = "no"
            return _ticket_page(*_load_page(ticket_id), merge_form=form, merge_target=target)
        else:
            try:
                services.merge(ticket, target, current_user,
                               cc_requester=form.requester_access.data == "cc")
            except services.ActionError as exc:
                db.session.rollback()
                form.target.errors = [*form.target.errors, str(exc)]
            else:
                db.session.commit()
                flash(f"{ticket.reference} was merged into {target.reference}.", "success")
                return redirect(url_for("agent.ticket", ticket_id=target.id))
    return _ticket_page(*_load_page(ticket_id), merge_form=form, status=422)


@bp.route("/tickets/<int:ticket_id>/article", methods=["GET", "POST"])
@agent_required
def article_draft(ticket_id: int):
    """Turn this ticket into a KB draft: the question and the agent's answer, prefilled."""
    ticket = _load_ticket(ticket_id)
    form = ArticleDraftForm()
    sections = kb_queries.section_choices()
    form.section.choices = select_options(sections)
    if request.method == "GET":
        form.title.data = ticket.subject
        form.body.data = articles.draft_body(ticket)
    elif form.validate_on_submit():
        try:
            article = articles.create_draft(
                ticket, current_user, form.section.data, form.title.data, form.body.data
            )
        except services.ActionError as exc:
            db.session.rollback()
            form.section.errors = [*form.section.errors, str(exc)]
        else:
            db.session.commit()
            flash(f"Draft article “{article.title}” created for the KB team to review.", "success")
            return redirect(url_for("agent.ticket", ticket_id=ticket.id))
    return render_template("agent/article_draft.html", ticket=ticket, form=form,
                           sections=sections), (422 if form.errors else 200)


@bp.route("/tickets/<int:ticket_id>/attachments/<int:attachment_id>/<path:filename>")
@agent_required
def download(ticket_id: int, attachment_id: int, filename: str):
    """Agents download any attachment of the ticket (notes' too); never rendered inline."""
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or attachment.ticket_id != ticket_id:
        abort(404)
    path = stored_path(attachment)
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype=attachment.content_type, as_attachment=True,
                         download_name=attachment.filename, max_age=0)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- reports --------------------------------------------------------------------------------

CHART_COLOURS = {"created": "#1d4ed8", "solved": "#15803d", "backlog": "#b45309"}


@bp.route("/reports")
@agent_required
def reports():
    filters, problems = metrics.ReportFilters.from_args(request.args)
    for problem in problems:
        flash(problem, "warning")
    report = metrics.cached_report(filters)
    return render_template(
        "agent/reports.html",
        report=report,
        filters=filters,
        charts=_charts(report),
        priorities=list(Priority),
        **_choices(),
    )


# id of a cached report -> (a weak reference to it, its charts' HTML); the newest few.
_rendered_charts: OrderedDict[int, tuple[weakref.ref, Markup]] = OrderedDict()
RENDERED_CHARTS = 64


def _charts(report: metrics.Report) -> Markup:
    """The report's SVG charts, rendered once per report: the report is reused while nothing
    it reads changes (metrics.cached_report), and its charts' hundreds of escaped numbers
    were a fifth of the reports page."""
    entry = _rendered_charts.get(id(report))
    if entry is not None and entry[0]() is report:
        return entry[1]
    html = Markup("".join(  # noqa: S704 (rendered by autoescaped templates)
        render_template("agent/_chart.html", chart=chart) for chart in _daily_charts(report)))
    _rendered_charts[id(report)] = (weakref.ref(report), html)
    while len(_rendered_charts) > RENDERED_CHARTS:
        _rendered_charts.popitem(last=False)
    return html


def _daily_charts(report: metrics.Report) -> list:
    labels = [d.day.strftime("%d %b") for d in report.days]
    volume = daily_chart(
        "Tickets created and solved per day",
        labels,
        {
            "Created": (CHART_COLOURS["created"], [d.created for d in report.days]),
            "Solved": (CHART_COLOURS["solved"], [d.solved for d in report.days]),
        },
    )
    backlog = daily_chart(
        "Backlog at the end of each day",
        labels,
        {},
        {"Backlog": (CHART_COLOURS["backlog"], [d.backlog for d in report.days])},
    )
    return [volume, backlog]


@bp.route("/reports/<name>.csv")
@agent_required
def reports_csv(name: str):
    filters, _ = metrics.ReportFilters.from_args(request.args)
    tables = metrics.cached_report(filters).tables()
    if name not in tables:
        abort(404)
    headers, rows = tables[name]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_safe(v) for v in row])
    filename = f"{name}-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_safe(value):
    """Spreadsheets run cells starting with = + - @ as formulas: prefix text cells with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
