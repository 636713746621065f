"""Admin pages for the support desk: groups, ticket categories and routing, SLA policies and
business hours, canned replies, and the agents list."""

from __future__ import annotations

from datetime import time
from zoneinfo import available_timezones

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Length, NumberRange, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portal.admin import bp
from portal.agent.jobs import AUTOCLOSE_KEY, autoclose_days
from portal.agent.services import choice_lists
from portal.auth.models import Role, User
from portal.auth.views import admin_required
from portal.extensions import db
from portal.forms import PortalForm, select_options
from portal.tickets import sla
from portal.tickets.models import (
    CannedReply,
    Group,
    Priority,
    Setting,
    SlaPolicy,
    Ticket,
    TicketCategory,
    group_members,
)
from portal.tickets.routing import OPEN_STATUSES

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class GroupForm(PortalForm):
    name = StringField("Name", validators=[DataRequired("Give the group a name."),
                                           Length(max=120)])
    auto_assign = BooleanField("Assign new tickets to the least-loaded member (round-robin)")
    members = CheckboxesField("Members", coerce=int, choices=[])


class CategoryForm(PortalForm):
    name = StringField("Name", validators=[DataRequired("Give the category a name."),
                                           Length(max=120)])
    position = IntegerField("Position in lists", default=0,
                            validators=[NumberRange(min=0, max=10_000)])
    active = BooleanField("Customers can choose it", default=True)
    group = SelectField("Route new tickets to group", coerce=int, choices=[])


class CannedReplyForm(PortalForm):
    title = StringField("Title", validators=[DataRequired("Give the reply a title."),
                                             Length(max=120)])
    body = TextAreaField("Text", validators=[DataRequired("The text is empty."),
                                             Length(max=20_000)])


class SlaForm(PortalForm):
    days = CheckboxesField("Working days", coerce=int,
                           choices=select_options(list(enumerate(WEEKDAYS))))
    start = TimeField("Opens at", validators=[DataRequired("Give an opening time.")])
    end = TimeField("Closes at", validators=[DataRequired("Give a closing time.")])
    time_zone = StringField("Time zone", validators=[DataRequired(), Length(max=60)],
                            description="An IANA time zone such as Europe/London.")
    autoclose_days = IntegerField("Close solved tickets after (days)",
                                  validators=[NumberRange(min=1, max=365)])

    def validate_time_zone(self, field):
        if field.data not in available_timezones() and field.data != "UTC":
            raise ValidationError("Unknown time zone: use a name like Europe/London or UTC.")

    def validate_end(self, field):
        if self.start.data and field.data and field.data <= self.start.data:
            raise ValidationError("Closing time must be after opening time.")


def _minutes_field(name: str) -> IntegerField:
    return IntegerField(name, validators=[NumberRange(min=1, max=525_600,
                                                      message="Use 1 to 525600 minutes.")])


for _p in Priority:
    setattr(SlaForm, f"{_p.value}_first", _minutes_field(f"{_p.value.capitalize()}: first reply"))
    setattr(SlaForm, f"{_p.value}_resolution",
            _minutes_field(f"{_p.value.capitalize()}: resolution"))
    setattr(SlaForm, f"{_p.value}_business", BooleanField("Business hours only"))


def _taken(model, column, value: str, current) -> bool:
    """Whether another row already uses this unique name (checked before any change)."""
    other = db.session.scalar(select(model).where(column == value))
    return other is not None and other is not current


def _save(obj, form, unique_field: str, template: str, **ctx):
    """Commit, or show the "already taken" error on the form without losing the input."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        field = form[unique_field]
        field.errors = [*field.errors, f"That {unique_field} is already taken."]
        return render_template(template, form=form, obj=obj, **ctx), 422
    return None


# --- groups ---------------------------------------------------------------------------------


def _group_form(group: Group | None) -> GroupForm:
    form = GroupForm(obj=group if request.method == "GET" else None)
    form.members.choices = select_options([(a.id, a.name) for a in choice_lists()["agents"]])
    if request.method == "GET" and group is not None:
        form.members.data = [m.id for m in group.members]
    return form


@bp.route("/support/groups")
@admin_required
def groups():
    rows = db.session.scalars(
        select(Group).options(selectinload(Group.members)).order_by(Group.name)
    ).all()
    return render_template("admin/support/groups.html", groups=rows)


@bp.route("/support/groups/new", methods=["GET", "POST"], defaults={"group_id": None})
@bp.route("/support/groups/<int:group_id>", methods=["GET", "POST"])
@admin_required
def group_edit(group_id: int | None):
    group = db.session.get(Group, group_id) if group_id else None
    if group_id and group is None:
        abort(404)
    form = _group_form(group)
    if form.validate_on_submit() and _taken(Group, Group.name, form.name.data.strip(), group):
        form.name.errors = [*form.name.errors, "That name is already taken."]
    elif form.validate_on_submit():
        if group is None:
            group = Group(name=form.name.data.strip())
            db.session.add(group)
        group.name = form.name.data.strip()
        group.auto_assign = form.auto_assign.data
        group.members = list(
            db.session.scalars(select(User).where(User.id.in_(form.members.data or [])))
        )
        failed = _save(group, form, "name", "admin/support/group_form.html")
        if failed:
            return failed
        flash(f"Group “{group.name}” saved.", "success")
        return redirect(url_for("admin.groups"))
    return render_template("admin/support/group_form.html", form=form, obj=group), (
        422 if form.errors else 200
    )


@bp.post("/support/groups/<int:group_id>/delete")
@admin_required
def group_delete(group_id: int):
    group = db.session.get(Group, group_id) or abort(404)
    if PortalForm().validate_on_submit():
        db.session.delete(group)
        db.session.commit()
        flash(f"Group “{group.name}” deleted; its tickets keep their assignee.", "success")
    else:
        flash("The form expired; please try again.", "error")
    return redirect(url_for("admin.groups"))


# --- categories and routing -----------------------------------------------------------------


@bp.route("/support/categories")
@admin_required
def categories():
    rows = db.session.scalars(
        select(TicketCategory)
        .options(selectinload(TicketCategory.group))
        .order_by(TicketCategory.position, TicketCategory.name)
    ).all()
    return render_template("admin/support/categories.html", categories=rows)


@bp.route("/support/categories/new", methods=["GET", "POST"], defaults={"category_id": None})
@bp.route("/support/categories/<int:category_id>", methods=["GET", "POST"])
@admin_required
def category_edit(category_id: int | None):
    category = db.session.get(TicketCategory, category_id) if category_id else None
    if category_id and category is None:
        abort(404)
    form = CategoryForm(obj=category if request.method == "GET" else None)
    form.group.choices = select_options(
        [(0, "— no routing —")]
        + [(g.id, g.name) for g in db.session.scalars(select(Group).order_by(Group.name))]
    )
    if request.method == "GET" and category is not None:
        form.group.data = category.group_id or 0
    if form.validate_on_submit() and _taken(
        TicketCategory, TicketCategory.name, form.name.data.strip(), category
    ):
        form.name.errors = [*form.name.errors, "That name is already taken."]
    elif form.validate_on_submit():
        if category is None:
            category = TicketCategory(name=form.name.data.strip())
            db.session.add(category)
        category.name = form.name.data.strip()
        category.position = form.position.data or 0
        category.active = form.active.data
        category.group_id = form.group.data or None
        failed = _save(category, form, "name", "admin/support/category_form.html")
        if failed:
            return failed
        flash(f"Category “{category.name}” saved.", "success")
        return redirect(url_for("admin.categories"))
    return render_template("admin/support/category_form.html", form=form, obj=category), (
        422 if form.errors else 200
    )


# --- SLA policies and business hours --------------------------------------------------------


@bp.route("/support/sla", methods=["GET", "POST"])
@admin_required
def sla_settings():
    policies = {p.priority: p for p in db.session.scalars(select(SlaPolicy))}
    hours = sla.business_hours()
    form = SlaForm()
    if request.method == "GET":
        form.days.data = sorted(hours.days)
        form.start.data, form.end.data = hours.start, hours.end
        form.time_zone.data = hours.time_zone
        form.autoclose_days.data = autoclose_days()
        for priority in Priority:
            first, resolution = sla.targets(priority)
            getattr(form, f"{priority.value}_first").data = first
            getattr(form, f"{priority.value}_resolution").data = resolution
            policy = policies.get(priority)
            getattr(form, f"{priority.value}_business").data = bool(
                policy and policy.business_hours
            )
    if form.validate_on_submit():
        for priority in Priority:
            policy = policies.get(priority) or SlaPolicy(priority=priority)
            db.session.add(policy)
            policy.first_response_minutes = getattr(form, f"{priority.value}_first").data
            policy.resolution_minutes = getattr(form, f"{priority.value}_resolution").data
            policy.business_hours = getattr(form, f"{priority.value}_business").data
        sla.save_business_hours(
            sla.BusinessHours(
                days=frozenset(form.days.data or []),
                start=form.start.data or time(9),
                end=form.end.data or time(17),
                time_zone=form.time_zone.data,
            )
        )
        setting = db.session.get(Setting, AUTOCLOSE_KEY) or Setting(key=AUTOCLOSE_KEY, value="")
        setting.value = str(form.autoclose_days.data)
        db.session.add(setting)
        db.session.commit()
        flash("SLA policies and business hours saved; they apply to new due times.", "success")
        return redirect(url_for("admin.sla_settings"))
    return render_template("admin/support/sla.html", form=form, priorities=list(Priority)), (
        422 if form.errors else 200
    )


# --- canned replies -------------------------------------------------------------------------


@bp.route("/support/canned")
@admin_required
def canned_replies():
    rows = db.session.scalars(select(CannedReply).order_by(CannedReply.title)).all()
    from portal.agent.services import PLACEHOLDERS

    return render_template("admin/support/canned.html", replies=rows,
                           placeholders=PLACEHOLDERS, delete_form=PortalForm())


@bp.route("/support/canned/new", methods=["GET", "POST"], defaults={"reply_id": None})
@bp.route("/support/canned/<int:reply_id>", methods=["GET", "POST"])
@admin_required
def canned_edit(reply_id: int | None):
    from portal.agent.services import PLACEHOLDERS

    reply = db.session.get(CannedReply, reply_id) if reply_id else None
    if reply_id and reply is None:
        abort(404)
    form = CannedReplyForm(obj=reply if request.method == "GET" else None)
    if form.validate_on_submit() and _taken(
        CannedReply, CannedReply.title, form.title.data.strip(), reply
    ):
        form.title.errors = [*form.title.errors, "That title is already taken."]
    elif form.validate_on_submit():
        if reply is None:
            reply = CannedReply(title=form.title.data.strip(), body="")
            db.session.add(reply)
        reply.title = form.title.data.strip()
        reply.body = form.body.data
        failed = _save(
            reply, form, "title", "admin/support/canned_form.html", placeholders=PLACEHOLDERS
        )
        if failed:
            return failed
        flash(f"Canned reply “{reply.title}” saved.", "success")
        return redirect(url_for("admin.canned_replies"))
    return render_template("admin/support/canned_form.html", form=form, obj=reply,
                           placeholders=PLACEHOLDERS), (422 if form.errors else 200)


@bp.post("/support/canned/<int:reply_id>/delete")
@admin_required
def canned_delete(reply_id: int):
    reply = db.session.get(CannedReply, reply_id) or abort(404)
    if PortalForm().validate_on_submit():
        db.session.delete(reply)
        db.session.commit()
        flash(f"Canned reply “{reply.title}” deleted.", "success")
    else:
        flash("The form expired; please try again.", "error")
    return redirect(url_for("admin.canned_replies"))


# --- agents ---------------------------------------------------------------------------------


@bp.route("/support/agents")
@admin_required
def agents():
    """Every agent and admin with their groups and open load (two queries)."""
    load = (
        select(Ticket.assignee_id, func.count(Ticket.id).label("open"))
        .where(Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.assignee_id)
        .subquery()
    )
    rows = db.session.execute(
        select(User, func.coalesce(load.c.open, 0))
        .outerjoin(load, load.c.assignee_id == User.id)
        .where(User.role.in_((Role.AGENT, Role.ADMIN)))
        .order_by(User.active.desc(), User.name)
    ).all()
    memberships: dict[int, list[str]] = {}
    for user_id, name in db.session.execute(
        select(group_members.c.user_id, Group.name)
        .join(Group, Group.id == group_members.c.group_id)
        .order_by(Group.name)
    ):
        memberships.setdefault(user_id, []).append(name)
    users_page = "admin.users" if "admin.users" in _endpoints() else None
    return render_template("admin/support/agents.html", rows=rows, memberships=memberships,
                           users_page=users_page)


def _endpoints() -> set[str]:
    from flask import current_app

    return set(current_app.view_functions)
