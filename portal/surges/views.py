"""Agent pages: the surges strip and list, one surge with its actions, and problem pages."""

from __future__ import annotations

import csv
import io
import secrets

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from portal.auth.views import admin_required, agent_required
from portal.db import utcnow
from portal.extensions import db
from portal.htmx import wants_partial
from portal.surges import bp, known_issues, problems, services
from portal.surges.forms import (
    ActionForm,
    CreateProblemForm,
    LinkProblemForm,
    PublishForm,
    ReplyAllForm,
    SensitivityForm,
)
from portal.surges.models import Surge
from portal.tickets.models import Ticket, TicketType

problems_bp = Blueprint("problems", __name__, url_prefix="/agent/problems")
admin_bp = Blueprint("surges_admin", __name__, url_prefix="/admin/surges")


def _surge(surge_id: int) -> Surge:
    surge = db.session.get(Surge, surge_id)
    if surge is None:
        abort(404)
    return surge


def _ticked(surge: Surge) -> list[Ticket]:
    """The members left ticked on the form (strays can be unticked)."""
    wanted = {int(v) for v in request.form.getlist("ticket") if v.isascii() and v.isdigit()}
    return [t for _, t in services.member_tickets(surge) if t.id in wanted]


@bp.route("/")
@agent_required
def index():
    form = SensitivityForm(sensitivity=services.sensitivity().name)
    return render_template("surges/index.html", surges=services.recent_surges(),
                           sensitivity_form=form, now=utcnow())


@bp.route("/report")
@agent_required
def report():
    return render_template("surges/report.html", report=services.report())


@bp.route("/report.csv")
@agent_required
def report_csv():
    out = io.StringIO()
    csv.writer(out).writerows(services.report_rows(services.report()))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=surges-report.csv"})


@bp.route("/strip")
@agent_required
def strip():
    """The queue's strip (polled by htmx) or, without htmx, the surges page."""
    if not wants_partial("surges-strip"):
        return redirect(url_for("surges.index"))
    return render_template("surges/_strip.html", surges=services.open_surges(), now=utcnow())


@bp.route("/badge")
@agent_required
def badge():
    if not wants_partial("surges-badge"):
        return redirect(url_for("surges.index"))
    return render_template("surges/_badge.html")


@bp.route("/<int:surge_id>")
@agent_required
def detail(surge_id: int):
    surge = _surge(surge_id)
    return _detail_page(surge)


def _detail_page(surge, *, create=None, link=None, status=200):
    members = services.member_tickets(surge)
    return render_template(
        "surges/detail.html", surge=surge, members=members,
        representatives=services.representatives(surge),
        organisations=services.organisations(surge),
        create_form=create or CreateProblemForm(formdata=None, subject=surge.title),
        link_form=link or LinkProblemForm(formdata=None), action_form=ActionForm(),
        now=utcnow()), status


@bp.post("/<int:surge_id>/problem")
@agent_required
def create_problem(surge_id: int):
    surge = _surge(surge_id)
    form = CreateProblemForm()
    if not form.validate_on_submit():
        return _detail_page(surge, create=form, status=422)
    tickets = _ticked(surge)
    problem = problems.create_problem(form.subject.data, current_user, tickets)
    services.record_problem(surge, problem, current_user, "new_problem")
    db.session.commit()
    flash(f"Problem {problem.reference} created with {len(tickets)} linked tickets.", "success")
    return redirect(url_for("problems.show", problem_id=problem.id))


@bp.post("/<int:surge_id>/link")
@agent_required
def link_problem(surge_id: int):
    surge = _surge(surge_id)
    form = LinkProblemForm()
    if form.validate_on_submit():
        problem = _problem_by_reference(form.reference.data)
        if problem is None:
            form.reference.errors = ["No problem ticket has that reference."]
        else:
            try:
                count = problems.link(problem, _ticked(surge), current_user)
            except problems.ProblemError as exc:
                db.session.rollback()
                form.reference.errors = [str(exc)]
            else:
                services.record_problem(surge, problem, current_user, "linked")
                db.session.commit()
                flash(f"{count} tickets linked to {problem.reference}.", "success")
                return redirect(url_for("problems.show", problem_id=problem.id))
    return _detail_page(surge, link=form, status=422)


def _problem_by_reference(reference: str) -> Ticket | None:
    ticket_id = Ticket.id_from_reference(reference)
    ticket = db.session.get(Ticket, ticket_id) if ticket_id else None
    return ticket if ticket is not None and ticket.type == TicketType.PROBLEM else None


@bp.post("/<int:surge_id>/dismiss")
@agent_required
def dismiss(surge_id: int):
    surge = _surge(surge_id)
    if ActionForm().validate_on_submit():
        services.dismiss(surge, current_user)
        db.session.commit()
        flash("Marked as not a surge: similar tickets stay quiet for a day.", "success")
    return redirect(url_for("surges.index"))


@admin_bp.post("/sensitivity")
@admin_required
def sensitivity():
    form = SensitivityForm()
    if form.validate_on_submit():
        services.set_sensitivity(form.sensitivity.data)
        db.session.commit()
        flash(f"Surge sensitivity set to {form.sensitivity.data}.", "success")
    return redirect(url_for("surges.index"))


# --- problems ------------------------------------------------------------------------------
def _problem(problem_id: int) -> Ticket:
    ticket = db.session.get(Ticket, problem_id)
    if ticket is None or ticket.type != TicketType.PROBLEM:
        abort(404)
    return ticket


@problems_bp.route("/")
@agent_required
def problem_list():
    rows = db.session.scalars(select(Ticket).where(Ticket.type == TicketType.PROBLEM)
                              .order_by(Ticket.created_at.desc()).limit(100)).all()
    return render_template("surges/problems.html", problems=rows)


@problems_bp.route("/<int:problem_id>")
@agent_required
def show(problem_id: int):
    return _problem_page(_problem(problem_id))


def _problem_page(problem, *, reply=None, publish=None, status=200):
    reply = reply or ReplyAllForm(formdata=None, form_key=secrets.token_hex(16))
    issue = db.session.get(known_issues.KnownIssue, problem.id)
    return render_template(
        "surges/problem.html", problem=problem, incidents=problems.incidents(problem),
        reply_form=reply, action_form=ActionForm(), issue=issue,
        publish_form=publish or PublishForm(
            formdata=None, public_text=issue.public_text if issue else ""),
        followers=known_issues.follower_count(problem), now=utcnow()), status


@problems_bp.post("/<int:problem_id>/reply")
@agent_required
def reply_all(problem_id: int):
    problem = _problem(problem_id)
    form = ReplyAllForm()
    if form.validate_on_submit():
        try:
            sent = problems.reply_to_all(problem, current_user, form.body.data,
                                         form.form_key.data, solve=form.solve.data)
        except (problems.ProblemError, ValueError) as exc:
            db.session.rollback()
            form.body.errors = [str(exc)]
        else:
            db.session.commit()
            flash(f"Reply sent to {sent} linked tickets"
                  f"{' and the problem solved' if form.solve.data else ''}.", "success")
            return redirect(url_for("problems.show", problem_id=problem.id))
    return _problem_page(problem, reply=form, status=422)


@problems_bp.post("/<int:problem_id>/incidents/<int:incident_id>/<action>")
@agent_required
def incident_action(problem_id: int, incident_id: int, action: str):
    problem = _problem(problem_id)
    if action not in ("unlink", "opt-out", "opt-in"):
        abort(404)
    if ActionForm().validate_on_submit():
        try:
            if action == "unlink":
                problems.unlink(problem, incident_id, current_user)
            else:
                problems.set_opt_out(problem, incident_id, action == "opt-out")
        except problems.ProblemError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
    return redirect(url_for("problems.show", problem_id=problem.id))


@problems_bp.post("/<int:problem_id>/link-ticket")
@agent_required
def link_ticket(problem_id: int):
    """The "probably part of problem … — link?" hint's button on a ticket page."""
    problem = _problem(problem_id)
    incident = db.session.get(Ticket, request.form.get("incident", type=int) or 0)
    if incident is None:
        abort(404)
    if ActionForm().validate_on_submit():
        try:
            problems.link(problem, [incident], current_user)
        except problems.ProblemError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(f"{incident.reference} linked to {problem.reference}.", "success")
    return redirect(url_for("agent.ticket", ticket_id=incident.id))


@problems_bp.post("/<int:problem_id>/known-issue")
@agent_required
def publish(problem_id: int):
    problem = _problem(problem_id)
    form = PublishForm()
    if request.form.get("withdraw"):
        if ActionForm().validate_on_submit():
            known_issues.withdraw(problem)
            db.session.commit()
            flash("The known issue is no longer shown to customers.", "success")
        return redirect(url_for("problems.show", problem_id=problem.id))
    if form.validate_on_submit():
        try:
            known_issues.publish(problem, form.public_text.data)
        except known_issues.KnownIssueError as exc:
            db.session.rollback()
            form.public_text.errors = [str(exc)]
        else:
            db.session.commit()
            flash("Published as a known issue.", "success")
            return redirect(url_for("problems.show", problem_id=problem.id))
    return _problem_page(problem, publish=form, status=422)
