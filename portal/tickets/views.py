"""Customer ticket pages. Views parse input, call services, commit once and render."""

from __future__ import annotations

from flask import (
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
from sqlalchemy.exc import IntegrityError

from portal import limits
from portal.agent import services as agent_services
from portal.converters import MAX_DB_INT, parse_page
from portal.extensions import db, htmx, limiter
from portal.forms import strip_control
from portal.htmx import wants_partial
from portal.tickets import bp, notify, services, suggestions
from portal.tickets.access import (
    Viewer,
    get_ticket_and_thread_or_404,
    get_ticket_or_404,
    grant,
    granted_email,
    shares_with,
    viewer_for,
)
from portal.tickets.attachments import (
    ALLOWED_DESCRIPTION,
    AttachmentError,
    chosen_files,
    remove_files,
    stored_path,
)
from portal.tickets.forms import (
    ActionForm,
    FindRequestForm,
    NewTicketForm,
    RatingForm,
    ReplyForm,
)
from portal.tickets.lifecycle import CUSTOMER_STATUS
from portal.tickets.links import LinkError, ticket_emails, verify_ticket_token
from portal.tickets.models import Attachment, Status, Ticket, TicketType


def _signed_in_user():
    return current_user if current_user.is_authenticated else None


def _invalid() -> int:
    """Status for a form re-shown with errors: 422, but 200 for htmx, which swaps no 4xx."""
    return 200 if htmx else 422


def _upload_hint() -> str:
    cfg = current_app.config
    return (
        f"Up to {cfg['MAX_ATTACHMENTS']} files, {cfg['MAX_UPLOAD_MB']} MB each: "
        f"{ALLOWED_DESCRIPTION}."
    )


# --- filing a request ------------------------------------------------------------------------


def _follow_up_source(reference: str | None) -> tuple[Ticket | None, Viewer | None]:
    """The closed ticket a follow-up continues, and who follows up; 404 unless they may see
    it."""
    if not reference:
        return None, None
    return get_ticket_or_404(reference)


def _render_new(form: NewTicketForm, hits=None, follow_up=None, status=200, known=(),
                answered=None):
    return render_template(
        "tickets/new.html", form=form, hits=hits or [], follow_up=follow_up, known=known,
        upload_hint=_upload_hint(), visitor=_signed_in_user() is None, answered=answered,
    ), status


def _limited(action: str, text_field, files) -> bool:
    """Count this action and its files; on refusal the reason goes beside the typed text,
    which the re-shown form keeps (HTTP 429)."""
    reason = limits.refused(action) or limits.refused("upload", cost=len(chosen_files(files)))
    if reason:
        text_field.errors = [*text_field.errors, reason]
    return reason is not None


def _known_issues(query: str):
    """Known issues close to what was typed (imported here: surges builds on tickets)."""
    from portal.surges.known_issues import matching

    return matching(query)


def _visitor_rate_limit() -> str:
    return current_app.config["VISITOR_TICKET_RATE_LIMIT"]


def _proven_sender() -> bool:
    """Signed in with a confirmed email (or staff). An unconfirmed account is anyone who typed
    an address: it files (and CCs) like a visitor, under the visitor limit."""
    return current_user.is_authenticated and (
        current_user.is_agent or current_user.email_confirmed_at is not None
    )


@bp.route("/new", methods=["GET", "POST"])
# Filings by unproven senders email addresses nobody has proven: keep that from being a relay.
@limiter.limit(_visitor_rate_limit, methods=["POST"], exempt_when=_proven_sender)
def new():
    user = _signed_in_user()
    categories = services.active_categories()
    form = NewTicketForm(visitor=user is None, categories=categories)
    follow_up, viewer = _follow_up_source(
        form.follow_up_of.data or request.args.get("follow_up")
    )
    if request.method == "GET" and follow_up is not None:
        form.follow_up_of.data = follow_up.reference
        form.subject.data = f"Follow-up to {follow_up.reference}: {follow_up.subject}"[:200]
        if user is None:
            form.name.data, form.email.data = viewer.name, viewer.email
    if request.method == "POST" and request.form.get("check"):
        # JS off: "Check for answers" shows suggestions and keeps everything typed.
        refusal = limits.refused("search")
        if refusal:
            form.description.errors = [refusal]
            return _render_new(form, follow_up=follow_up, status=429)
        query, hits = suggestions.suggestions_for(
            user, form.subject.data or "", form.description.data or ""
        )
        suggestions.record_impressions(form.form_key.data, query, hits)
        return _render_new(form, hits, follow_up, known=_known_issues(query),
                           answered=suggestions.answer_token(user, query, hits,
                                                              form.form_key.data or ""))
    if not form.validate_on_submit():
        return _render_new(form, follow_up=follow_up, status=_invalid() if form.errors else 200)

    existing = services.ticket_by_submission_key(form.form_key.data)
    if existing is not None:
        return _after_filing(existing, form, created=False)
    if _limited("ticket", form.description, request.files.getlist(form.attachments.name)):
        return _render_new(form, follow_up=follow_up, status=429)
    data = services.NewTicket(
        subject=form.subject.data,
        description=form.description.data,
        type=TicketType(form.type.data),
        name=form.name.data if user is None else user.name,
        email=form.email.data if user is None else user.email,
        category=next((c for c in categories if str(c.id) == form.category.data), None)
        if "category" in form else None,
        requester=user,
        ccs=form.cc.emails,
        files=request.files.getlist(form.attachments.name),
        submission_key=form.form_key.data,
        follow_up_of=follow_up,
    )
    saved = []
    try:
        ticket, saved = services.create_ticket(data)
        notify.notify_ticket_created(ticket)
        db.session.commit()
    except AttachmentError as exc:
        db.session.rollback()
        form.attachments.errors = [str(exc)]
        return _render_new(form, follow_up=follow_up, status=_invalid())
    except IntegrityError:
        # The same form submitted twice at once: the other request made the ticket.
        db.session.rollback()
        remove_files(saved)
        existing = services.ticket_by_submission_key(form.form_key.data)
        if existing is None:
            raise
        return _after_filing(existing, form, created=False)
    return _after_filing(ticket, form, created=True)


def _after_filing(ticket: Ticket, form: NewTicketForm, created: bool):
    if _signed_in_user() is None:
        # Holding this form's one-time key proves it was this browser that filed it.
        grant(ticket, ticket.requester_email)
    if not created:
        flash("That request was already submitted; here it is.", "info")
    return redirect(url_for("tickets.submitted", reference=ticket.reference), code=303)


@bp.route("/<reference>/submitted")
def submitted(reference):
    ticket, viewer = get_ticket_or_404(reference)
    return render_template("tickets/submitted.html", ticket=ticket, viewer=viewer)


# --- deflection ------------------------------------------------------------------------------


@bp.route("/new/suggestions")
def suggest():
    """The suggestions panel for the text typed so far (htmx, debounced by the form).

    Without htmx this fragment is no page: the form's "Check for answers" button does the job.
    """
    if not htmx:
        return redirect(url_for("tickets.new"))
    form_key = request.args.get("form_key", "")[:64]
    refusal = limits.refused("search")
    if refusal:
        return render_template("tickets/_suggestions.html", hits=[], form_key=form_key,
                               refusal=refusal), 429
    query, hits = suggestions.suggestions_for(
        _signed_in_user(), strip_control(request.args.get("subject", "")[:200]),
        strip_control(request.args.get("description", "")[:2000]),
    )
    suggestions.record_impressions(form_key, query, hits)
    return render_template("tickets/_suggestions.html", hits=hits, form_key=form_key,
                           known=_known_issues(query),
                           answered=suggestions.answer_token(_signed_in_user(), query, hits,
                                                              form_key))


@bp.route("/new/suggestions/<int:article_id>")
def suggestion(article_id):
    """One suggested article opened from the form: inline (htmx) or in its own tab."""
    article = suggestions.visible_article(article_id, _signed_in_user())
    if article is None:
        abort(404)
    form_key = request.args.get("form_key", "")[:64]
    suggestions.buffer_events(kind="open", form_key=form_key, article_ids=[article.id])
    template = "tickets/_suggestion.html" if htmx else "tickets/suggestion.html"
    return render_template(
        template, article=article, form_key=form_key, form=ActionForm(),
        answered=request.args.get("answered", "")[:suggestions.ANSWER_TOKEN_CHARS],
        article_url=suggestions.article_url(article), preview=suggestions.preview_text(article),
    )


@bp.route("/new/suggestions/<int:article_id>/answered", methods=["POST"])
def deflected(article_id):
    """"This answered my question": record the deflection; no request is filed."""
    article = suggestions.visible_article(article_id, _signed_in_user())
    if article is None:
        abort(404)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    form_key = request.form.get("form_key", "")[:64]
    suggestions.record(kind="deflected", form_key=form_key, article_ids=[article.id])
    suggestions.learn_answered(
        _signed_in_user(), request.form.get("answered", "")[:suggestions.ANSWER_TOKEN_CHARS],
        article, form_key)
    db.session.commit()
    return render_template(
        "tickets/answered.html", article=article, article_url=suggestions.article_url(article)
    )


# --- following requests ----------------------------------------------------------------------


@bp.route("/")
def my_requests():
    if not current_user.is_authenticated:
        # Visitors can still ask for help and reach their requests by email.
        return render_template("tickets/start.html")
    can_share = shares_with(current_user)
    scope = request.args.get("scope", "mine")
    if scope != "organization" or not can_share:
        scope = "mine"
    status = request.args.get("status", "all")
    if status not in services.FILTERS:
        status = "all"
    query = request.args.get("q", "")[:200]
    result = services.customer_tickets(
        current_user, scope=scope, status=status, query=query,
        page=parse_page(request.args.get("page")),
    )
    return render_template(
        "tickets/list.html", result=result, scope=scope, status=status, query=query,
        can_share=can_share, filters=services.FILTERS, status_label=CUSTOMER_STATUS,
    )


def _untouched_reply_fields() -> dict:
    """The reply form's text and files fields before anything is typed: the same on every
    ticket page (they depend on the configuration only), so rendered once per process.
    Rendering them through the field macro was a seventh of the customer's ticket page."""
    fields = current_app.extensions.get("tickets_untouched_reply")
    if fields is None:
        form = ReplyForm(formdata=None)
        field = get_template_attribute("_macros/forms.html", "field")
        fields = current_app.extensions["tickets_untouched_reply"] = {
            "body": field(form.body, rows=5, required=True),
            "attachments": field(form.attachments, hint=_upload_hint(), multiple=True),
        }
    return fields


def _ticket_context(ticket: Ticket, viewer: Viewer, reply_form: ReplyForm | None = None,
                    rating_form: RatingForm | None = None, messages: list | None = None) -> dict:
    if messages is None:
        messages = services.public_messages(ticket)
    if rating_form is None:
        rating_form = RatingForm(formdata=None, rating=ticket.csat_rating,
                                 comment=ticket.csat_comment)
    return {
        "ticket": ticket,
        "viewer": viewer,
        "messages": messages,
        "status_label": CUSTOMER_STATUS[ticket.status],
        "reply_form": reply_form or ReplyForm(formdata=None),
        "untouched_reply": _untouched_reply_fields() if reply_form is None else None,
        "rating_form": rating_form,
        "action_form": ActionForm(),
        "is_requester": viewer.is_requester_of(ticket),
        "poll": poll_state(ticket, messages),
        "upload_hint": _upload_hint(),
        "merged_into": _linked_ticket(ticket, ticket.merged_into_id),
        "follow_up_of": _linked_ticket(ticket, ticket.follow_up_of_id),
    }


def _linked_ticket(ticket: Ticket, linked_id: int | None) -> Ticket | None:
    """The ticket this one points to, only when the viewer may open it: a merge can join two
    customers' tickets, and the other one's reference is not theirs to see.

    A visitor who came through a signed link proved their address; where that address is on
    the linked ticket too, the grant extends to it (as that ticket's own link would).
    """
    linked = db.session.get(Ticket, linked_id) if linked_id else None
    if linked is None or viewer_for(linked) is not None:
        return linked
    email = granted_email(ticket)
    if email is not None and email in ticket_emails(ticket) and email in ticket_emails(linked):
        grant(linked, email)
        return linked
    return None


def version_of(ticket: Ticket) -> str:
    return f"{ticket.last_activity_at.isoformat()}|{ticket.status.value}"


def poll_state(ticket: Ticket, messages) -> dict | None:
    """What the page holds, so the poll can answer "nothing new" from one row."""
    if ticket.status == Status.CLOSED:
        return None
    return {
        "after": messages[-1].id if messages else 0,
        "v": version_of(ticket),
        "s": ticket.status.value,
        "seconds": current_app.config["TICKET_POLL_SECONDS"],
    }


@bp.route("/<reference>")
def show(reference):
    ticket, viewer, messages = get_ticket_and_thread_or_404(reference)
    return render_template("tickets/show.html",
                           **_ticket_context(ticket, viewer, messages=messages))


@bp.route("/<reference>/updates")
def updates(reference):
    """The page's poll: 204 when nothing changed (286, stop, once closed), else what is new.

    Opened without htmx (a bookmark, a crawler) it is the ticket page itself.
    """
    ticket, viewer = get_ticket_or_404(reference)
    if not htmx:
        return redirect(url_for("tickets.show", reference=ticket.reference))
    if request.args.get("v") == version_of(ticket):
        return "", 204
    after = request.args.get("after", 0, type=int)
    # Past any id the database holds (SQLite overflows on it): nothing newer to show.
    messages = services.public_messages(ticket, min(max(after, 0), MAX_DB_INT))
    context = _ticket_context(ticket, viewer)
    status_changed = request.args.get("s") != ticket.status.value
    response = current_app.make_response(render_template(
        "tickets/_updates.html", new_messages=messages, status_changed=status_changed, **context
    ))
    if ticket.status == Status.CLOSED:
        response.status_code = 286  # htmx stops polling; the page shows the closed state
    return response


def _render_ticket(ticket, viewer, status=200, **forms):
    context = _ticket_context(ticket, viewer, **forms)
    if wants_partial("ticket-body"):
        return render_template("tickets/_ticket_body.html", **context)
    return render_template("tickets/show.html", **context), status


@bp.route("/<reference>/reply", methods=["POST"])
def reply(reference):
    ticket, viewer = get_ticket_or_404(reference)
    form = ReplyForm()
    if not form.validate_on_submit():
        return _render_ticket(ticket, viewer, _invalid(), reply_form=form)
    if _limited("reply", form.body, request.files.getlist(form.attachments.name)):
        return _render_ticket(ticket, viewer, 429, reply_form=form)
    if _replies_as_agent(ticket, viewer):
        try:
            message = agent_services.reply(ticket, viewer.user, form.body.data, internal=False,
                                           files=request.files.getlist(form.attachments.name))
        except agent_services.ActionError as exc:
            db.session.rollback()
            form.body.errors = [str(exc)]
            return _render_ticket(ticket, viewer, _invalid(), reply_form=form)
        db.session.commit()
        return _reply_added(ticket, viewer, message)
    saved = []
    try:
        message, saved, created = services.add_customer_reply(
            ticket, viewer, form.body.data, request.files.getlist(form.attachments.name),
            form.form_key.data,
        )
        if created:
            notify.notify_public_reply(ticket, message, author_email=viewer.email)
        db.session.commit()
    except AttachmentError as exc:
        db.session.rollback()
        form.attachments.errors = [str(exc)]
        return _render_ticket(ticket, viewer, _invalid(), reply_form=form)
    except services.TicketError as exc:
        db.session.rollback()
        form.body.errors = [str(exc)]
        return _render_ticket(ticket, viewer, _invalid(), reply_form=form)
    except IntegrityError:
        db.session.rollback()
        remove_files(saved)
        flash("Your reply was already sent.", "info")
        return redirect(url_for("tickets.show", reference=ticket.reference), code=303)
    return _reply_added(ticket, viewer, message)


def _replies_as_agent(ticket: Ticket, viewer: Viewer) -> bool:
    """Staff answering a customer's ticket from its portal page: their reply is an agent
    reply (first-response clock, assignment, the customer's email), not a customer message.
    An agent's own request (they are its requester) stays a customer conversation."""
    return bool(viewer.user is not None and viewer.user.is_agent
                and not viewer.is_requester_of(ticket))


def _reply_added(ticket: Ticket, viewer: Viewer, message):
    if wants_partial("ticket-body"):
        return render_template(
            "tickets/_ticket_body.html", notice="Your reply was added.",
            **_ticket_context(ticket, viewer),
        )
    flash("Your reply was added.", "success")
    return redirect(
        url_for("tickets.show", reference=ticket.reference, _anchor=f"m-{message.id}"), code=303
    )


@bp.route("/<reference>/solve", methods=["POST"])
def solve(reference):
    ticket, viewer = get_ticket_or_404(reference)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        services.mark_solved(ticket, viewer)
    except services.TicketError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash("Marked as solved. Thank you! Tell us how we did below.", "success")
    return redirect(url_for("tickets.show", reference=ticket.reference, _anchor="rate"), code=303)


@bp.route("/<reference>/rate", methods=["GET", "POST"])
def rate(reference):
    """Rate the support good or bad; the "solved" email links here with `rating` preset."""
    ticket, viewer = get_ticket_or_404(reference)
    form = RatingForm()
    if request.method == "GET":
        preset = request.args.get("rating")
        form = RatingForm(formdata=None, rating=preset if preset in services.RATINGS
                          else ticket.csat_rating, comment=ticket.csat_comment)
        return render_template("tickets/rate.html", ticket=ticket, form=form,
                               status_label=CUSTOMER_STATUS[ticket.status],
                               is_requester=viewer.is_requester_of(ticket))
    if form.validate_on_submit():
        try:
            services.rate(ticket, viewer, form.rating.data, form.comment.data or "")
        except services.TicketError as exc:
            db.session.rollback()
            form.rating.errors = [str(exc)]
        else:
            db.session.commit()
            flash("Thank you for your feedback.", "success")
            return redirect(
                url_for("tickets.show", reference=ticket.reference, _anchor="rate"), code=303
            )
    return render_template("tickets/rate.html", ticket=ticket, form=form,
                           status_label=CUSTOMER_STATUS[ticket.status],
                           is_requester=viewer.is_requester_of(ticket)), _invalid()


@bp.route("/<reference>/attachments/<int:attachment_id>/<path:filename>")
def download(reference, attachment_id, filename):
    """Only for people who may see the ticket; always a download, never rendered."""
    ticket, _viewer = get_ticket_or_404(reference)
    attachment = db.session.get(Attachment, attachment_id)
    if (
        attachment is None
        or attachment.ticket_id != ticket.id
        or attachment.message is None
        or attachment.message.internal
    ):
        abort(404)
    path = stored_path(attachment)
    if not path.is_file():
        abort(404)
    response = send_file(
        path, mimetype=attachment.content_type, as_attachment=True,
        download_name=attachment.filename, max_age=0,
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- signed links and "find my request" ------------------------------------------------------


@bp.route("/link/<token>")
def open_link(token):
    """Open a ticket from an emailed link: remember the grant in the session, then show it."""
    try:
        ticket, email = verify_ticket_token(token)
    except LinkError as exc:
        flash(str(exc), "error")
        return redirect(url_for("tickets.find"), code=303)
    grant(ticket, email)
    rating = request.args.get("rating")
    if rating in services.RATINGS and ticket.status == Status.SOLVED:
        return redirect(url_for("tickets.rate", reference=ticket.reference, rating=rating))
    return redirect(url_for("tickets.show", reference=ticket.reference))


def _find_rate_limit() -> str:
    return current_app.config["FIND_REQUEST_RATE_LIMIT"]


@bp.route("/find", methods=["GET", "POST"])
@limiter.limit(_find_rate_limit, methods=["POST"])
def find():
    """Re-send links by email; the answer is the same whether or not anything matched."""
    form = FindRequestForm()
    if form.validate_on_submit():
        tickets = services.tickets_for_email(form.email.data)
        if form.reference.data:
            tickets = [t for t in tickets if t.reference == form.reference.data.strip().upper()]
        notify.send_ticket_links(form.email.data, tickets)
        db.session.commit()
        flash(
            "If we have requests for that email address, we have sent links to them. "
            "Check your inbox (and spam folder) in a few minutes.",
            "success",
        )
        return redirect(url_for("tickets.find"), code=303)
    return render_template("tickets/find.html", form=form)
