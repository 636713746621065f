"""Admin pages: the section index and user administration (staff and customers)."""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.admin import bp
from portal.auth import services
from portal.auth.forms import ROLE_LABELS, CreateStaffForm, InviteStaffForm, RoleForm
from portal.auth.models import Role, User
from portal.auth.views import admin_required
from portal.converters import parse_page
from portal.extensions import db
from portal.htmx import render_page_or_partial
from portal.mail import absolute_url, send_mail

USER_FILTER_LABELS = {
    "all": "Everyone",
    "staff": "Staff",
    "customers": "Customers",
    "admins": "Admins",
    "invited": "Invitation pending",
    "deactivated": "Deactivated",
}


@bp.route("/")
@admin_required
def index():
    return render_template("admin/index.html")


@bp.route("/users")
@admin_required
def users():
    query = request.args.get("q", "").strip()[:200]
    show = request.args.get("show", "all")
    if show not in USER_FILTER_LABELS:
        show = "all"
    result = services.search_users(query, show, parse_page(request.args.get("page")))
    return render_page_or_partial(
        "admin/users.html", "admin/_users_table.html", "user-results",
        users=result, q=query, show=show, filters=USER_FILTER_LABELS,
    )


def _new_user_page(invite: InviteStaffForm | None = None, create: CreateStaffForm | None = None):
    return render_template(
        "admin/users_new.html",
        invite=invite or InviteStaffForm(prefix="invite", formdata=None),
        create=create or CreateStaffForm(prefix="create", formdata=None),
    )


def _taken_message(email: str) -> str:
    return f"{email} already has an account. Find it in the user list to change its role."


@bp.route("/users/new")
@admin_required
def new_user():
    return _new_user_page()


@bp.route("/users/invite", methods=["POST"])
@admin_required
def invite_user():
    form = InviteStaffForm(prefix="invite")
    if form.validate_on_submit():
        try:
            user = services.invite_staff(
                form.email.data, form.name.data, Role(form.role.data), invited_by=current_user
            )
        except services.AccountError:
            form.email.errors.append(_taken_message(form.email.data))
        else:
            _send_invite(user)
            db.session.commit()
            flash(f"Invitation sent to {user.email}.", "success")
            return redirect(url_for("admin.user_detail", user_id=user.id), code=303)
    return _new_user_page(invite=form)


@bp.route("/users/create", methods=["POST"])
@admin_required
def create_user():
    form = CreateStaffForm(prefix="create")
    if form.validate_on_submit():
        try:
            user = services.create_user(
                form.email.data, form.name.data, form.password.data, Role(form.role.data),
                confirmed=True, password_judged=True,
            )
        except services.AccountError:
            form.email.errors.append(_taken_message(form.email.data))
        else:
            db.session.commit()
            flash(
                f"{user.name} can now sign in as {user.role.value} with the password you set.",
                "success",
            )
            return redirect(url_for("admin.user_detail", user_id=user.id), code=303)
    return _new_user_page(create=form)


def _send_invite(user: User) -> None:
    """A fresh invitation link; the one sent before stops working."""
    token = services.issue_token(user, services.INVITE)
    db.session.commit()
    link = absolute_url("auth.accept_invite", token=token)
    send_mail(
        user.email, "You're invited to the Help Center team", "invite",
        user=user, link=link, inviter=current_user, days=_invite_days(),
    )


def _invite_days() -> int:
    return current_app.config["INVITE_MAX_AGE"] // 86400


def _get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users/<int:user_id>")
@admin_required
def user_detail(user_id: int):
    user = _get_user(user_id)
    return render_template(
        "admin/users_detail.html",
        user=user,
        role_form=RoleForm(role=user.role.value, formdata=None),
    )


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@admin_required
def change_role(user_id: int):
    user = _get_user(user_id)
    form = RoleForm()
    if form.validate_on_submit():
        role = Role(form.role.data)
        _apply(services.change_role, user, role, f"{user.name}'s role is now {ROLE_LABELS[role]}.")
    else:
        flash("Choose one of the listed roles.", "error")
    return redirect(url_for("admin.user_detail", user_id=user.id), code=303)


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
@admin_required
def deactivate(user_id: int):
    user = _get_user(user_id)
    _apply(services.set_active, user, False,
           f"{user.name} is deactivated and signed out everywhere.")
    return redirect(url_for("admin.user_detail", user_id=user.id), code=303)


@bp.route("/users/<int:user_id>/reactivate", methods=["POST"])
@admin_required
def reactivate(user_id: int):
    user = _get_user(user_id)
    _apply(services.set_active, user, True, f"{user.name} can sign in again.")
    return redirect(url_for("admin.user_detail", user_id=user.id), code=303)


@bp.route("/users/<int:user_id>/resend-invite", methods=["POST"])
@admin_required
def resend_invite(user_id: int):
    user = _get_user(user_id)
    if user.invitation_pending and user.active:
        _send_invite(user)
        db.session.commit()
        flash(f"A new invitation is on its way to {user.email}.", "success")
    else:
        flash("This person has already accepted their invitation.", "info")
    return redirect(url_for("admin.user_detail", user_id=user.id), code=303)


def _apply(change, user: User, value, success: str) -> None:
    """Run a service that may refuse with AccountError; commit and say what happened."""
    try:
        change(user, value, actor=current_user)
    except services.AccountError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return
    db.session.commit()
    flash(success, "success")
