"""Account settings: name, email and password."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user

from portal.auth import services
from portal.auth.forms import ChangePasswordForm, ProfileForm
from portal.extensions import db

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("", methods=["GET", "POST"])
@login_required
def settings():
    profile = ProfileForm(prefix="profile", obj=current_user if request.method == "GET" else None)
    password = ChangePasswordForm(prefix="password")
    if request.method == "POST" and request.form.get("action") == "profile":
        if profile.validate() and _update_profile(profile):
            db.session.commit()
            flash("Your details are saved.", "success")
            return redirect(url_for("account.settings"), code=303)
    elif (
        request.method == "POST"
        and request.form.get("action") == "password"
        and password.validate()
    ):
        if not current_user.check_password(password.current_password.data):
            password.current_password.errors.append("That is not your current password.")
        else:
            services.change_password(current_user, password.password.data)
            login_user(current_user)  # keep this session, with the new token
            db.session.commit()
            flash("Your password is changed. Other devices have been signed out.", "success")
            return redirect(url_for("account.settings"), code=303)
    return render_template("account/settings.html", profile=profile, password=password)


def _update_profile(form: ProfileForm) -> bool:
    new_email = services.normalize_email(form.email.data)
    if new_email != current_user.email:
        if not current_user.check_password(form.current_password.data or ""):
            form.current_password.errors.append("Enter your current password to change email.")
            return False
        if services.find_user(new_email) is not None:
            form.email.errors.append("Another account already uses this email.")
            return False
        current_user.email = new_email
        current_user.email_confirmed_at = None
        from portal.auth.views import _send_confirmation

        _send_confirmation(current_user)
    current_user.name = form.name.data
    return True
