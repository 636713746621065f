"""Account settings: name, email and password."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user

from portal.auth import services
from portal.auth.forms import ChangePasswordForm, ProfileForm
from portal.auth.views import send_confirmation
from portal.extensions import db
from portal.mail import absolute_url, send_mail

bp = Blueprint("account", __name__, url_prefix="/account")

REMEMBER_COOKIE = "remember_token"  # Flask-Login's default name


@bp.route("", methods=["GET", "POST"])
@login_required
def settings():
    """Two forms on one page; only the one that was sent reads the request."""
    action = request.form.get("action") if request.method == "POST" else None
    profile = _form(ProfileForm, "profile", action, obj=current_user)
    password = _form(ChangePasswordForm, "password", action, user=current_user)
    if action == "profile" and profile.validate():
        old_email = current_user.email
        if _update_profile(profile):
            email_changed = current_user.email != old_email
            if email_changed:
                _announce_email_change(old_email)
            db.session.commit()
            if email_changed:
                flash(f"Your details are saved. We sent a confirmation link to "
                      f"{current_user.email}.", "success")
            else:
                flash("Your details are saved.", "success")
            return redirect(url_for("account.settings"), code=303)
    elif action == "password" and password.validate():
        if not current_user.check_password(password.current_password.data):
            password.current_password.errors.append("That is not your current password.")
        else:
            services.change_password(current_user, password.password.data, judged=True)
            # Keep this device signed in (and its remember-me cookie) with the new token.
            login_user(current_user, remember=REMEMBER_COOKIE in request.cookies)
            db.session.commit()
            flash("Your password is changed. Other devices have been signed out.", "success")
            return redirect(url_for("account.settings"), code=303)
    return render_template("account/settings.html", profile=profile, password=password)


def _form(form_class, prefix: str, action: str | None, **kwargs):
    if action == prefix:
        return form_class(prefix=prefix, **kwargs)
    return form_class(prefix=prefix, formdata=None, **kwargs)


def _update_profile(form: ProfileForm) -> bool:
    new_email = services.normalize_email(form.email.data)
    if new_email != current_user.email:
        if not current_user.check_password(form.current_password.data or ""):
            form.current_password.errors.append("Enter your current password to change email.")
            return False
        if services.find_user(new_email) is not None:
            form.email.errors.append("Another account already uses this email.")
            return False
        services.change_email(current_user, new_email)
    current_user.name = form.name.data
    return True


def _announce_email_change(old_email: str) -> None:
    """Confirm the new address; tell the old one, in case someone else made the change."""
    send_confirmation(current_user)
    send_mail(
        old_email, "Your email address was changed", "confirm_email_changed",
        user=current_user, old_email=old_email, reset_link=absolute_url("auth.reset_request"),
    )
