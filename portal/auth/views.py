from functools import wraps
from urllib.parse import urlsplit

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from portal.auth import bp, services, throttle
from portal.auth.forms import LoginForm, RegisterForm, ResetPasswordForm, ResetRequestForm
from portal.converters import parse_id
from portal.db import utcnow
from portal.extensions import db, limiter
from portal.mail import absolute_url, send_mail


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: no scheme, no host, no `//` or backslash tricks."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


def home_for(user) -> str:
    return url_for("agent.queue") if user.is_agent else url_for("kb.home")


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _start_session(user, remember: bool) -> None:
    # A fresh session at sign-in: nothing from before (a planted session) carries over.
    session.clear()
    login_user(user, remember=remember)
    user.last_login_at = utcnow()


def _account_address_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_ADDRESS_RATE_LIMIT"]


def _account_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"]


_ACCOUNT_LIMITED = ("Too many failed sign-ins to this account in a short time. For its security, "
                    "wait a while and try again, or reset your password from this page.")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
@limiter.limit(_account_address_limit, methods=["POST"], key_func=throttle.account_address_key,
               deduct_when=throttle.failed, error_message=_ACCOUNT_LIMITED,
               scope="login-account-address")
@limiter.limit(_account_limit, methods=["POST"], key_func=throttle.account_key,
               deduct_when=throttle.failed, exempt_when=throttle.known_device,
               error_message=_ACCOUNT_LIMITED, scope="login-account")
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    user = _check_credentials(form) if form.validate_on_submit() else None
    if user is not None:
        too_weak = services.password_too_weak(user, form.password.data)
        _start_session(user, form.remember.data)
        db.session.commit()
        if too_weak:
            # Chosen under an older, looser rule: it still works, but ask for a better one now.
            flash(f"Welcome back, {user.name}. Your password is too easy to guess by today's "
                  "rules: please choose a new one below.", "warning")
            return throttle.remember_device(redirect(
                url_for("account.settings", _anchor="password-heading"), code=303), user.email)
        flash(f"Welcome back, {user.name}.", "success")
        return throttle.remember_device(
            redirect(safe_next(form.next.data) or home_for(user), code=303), user.email)
    return render_template("auth/login.html", form=form)


def _check_credentials(form: LoginForm):
    """The user the form signs in as, or None with the reason attached to the form."""
    try:
        with db.reading():  # the slow hash check must not hold up other writers
            user = services.authenticate(form.email.data, form.password.data)
    except services.AccountError as exc:
        form.email.errors.append(str(exc))
        return None
    if user is None:
        form.password.errors.append("That email and password do not match an account.")
    return user


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def register():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = services.create_user(form.email.data, form.name.data, form.password.data,
                                        password_judged=True)
        except services.AccountError as exc:
            form.email.errors.append(str(exc))
        else:
            _start_session(user, remember=False)
            send_confirmation(user)
            db.session.commit()
            flash(
                "Your account is ready. We sent a link to confirm your email address.", "success"
            )
            return redirect(url_for("kb.home"), code=303)
    return render_template("auth/register.html", form=form)


def send_confirmation(user) -> None:
    link = absolute_url("auth.confirm", token=services.make_confirm_token(user))
    send_mail(user.email, "Confirm your email address", "confirm_email", user=user, link=link)


@bp.route("/confirm/<token>")
def confirm(token):
    try:
        with db.writing():
            user = services.confirm_email(token)
    except services.AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for("kb.home"))
    flash(f"Thanks, {user.email} is confirmed.", "success")
    return redirect(url_for("account.settings") if current_user.is_authenticated else url_for(
        "auth.login"))


@bp.route("/confirm", methods=["POST"])
@login_required
def resend_confirmation():
    if current_user.email_confirmed_at is None:
        send_confirmation(current_user)
        db.session.commit()
        flash("We sent a new confirmation link.", "success")
    return redirect(url_for("account.settings"), code=303)


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        current_user.rotate_session_token()  # the old session and remember cookies stop working
        db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("kb.home"), code=303)


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def reset_request():
    form = ResetRequestForm()
    if form.validate_on_submit():
        _send_reset_email(form.email.data)
        db.session.commit()
        # The same answer, and one email either way, whether or not the account exists.
        flash(
            f"We have sent an email to {form.email.data} with what to do next. It can take a "
            "minute to arrive; check your spam folder too.",
            "success",
        )
        return redirect(url_for("auth.login"), code=303)
    return render_template("auth/reset_request.html", form=form)


def _send_reset_email(address: str) -> None:
    """A reset link for an account; for an unknown address, a note saying there is none.

    Both cases send one email in the same way, so neither the page nor its timing tells a
    stranger which addresses have accounts; only the mailbox owner learns it.
    """
    user = services.find_user(address)
    minutes = current_app.config["RESET_TOKEN_MAX_AGE"] // 60
    if user is not None and user.active:
        token = services.issue_token(user, services.RESET)
        db.session.commit()  # the link must work by the time the email arrives
        link = absolute_url("auth.reset", token=token)
        send_mail(user.email, "Reset your password", "reset_password",
                  user=user, link=link, minutes=minutes)
    else:
        send_mail(
            services.normalize_email(address), "Reset your password", "reset_password_no_account",
            deactivated=user is not None, register_link=absolute_url("auth.register"),
        )


def _link_refused(exc: services.AccountError, endpoint: str, advice: str):
    db.session.rollback()
    flash(f"{exc} {advice}", "error")
    return redirect(url_for(endpoint), code=303)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token):
    advice = "Ask for a new one below."
    try:
        user = services.user_for_token(services.RESET, token)
    except services.AccountError as exc:
        return _link_refused(exc, "auth.reset_request", advice)
    form = ResetPasswordForm(user=user)
    if form.validate_on_submit():
        try:
            services.spend_token(services.RESET, token)
        except services.AccountError as exc:  # the same link used a moment ago elsewhere
            return _link_refused(exc, "auth.reset_request", advice)
        services.change_password(user, form.password.data, judged=True)
        db.session.commit()
        logout_user()
        session.clear()
        flash("Your password has been changed. Sign in with the new one.", "success")
        # The emailed link proved the mailbox: this browser is the owner's.
        return throttle.remember_device(redirect(url_for("auth.login"), code=303), user.email)
    return render_template("auth/reset.html", form=form, token=token)


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token):
    """An invited agent or admin chooses a password and is signed in."""
    advice = "Ask an admin to send you a new invitation."
    try:
        user = services.user_for_token(services.INVITE, token)
    except services.AccountError as exc:
        return _link_refused(exc, "auth.login", advice)
    form = ResetPasswordForm(user=user)
    if form.validate_on_submit():
        try:
            services.spend_token(services.INVITE, token)
        except services.AccountError as exc:
            return _link_refused(exc, "auth.login", advice)
        services.accept_invite(user, form.password.data, judged=True)
        _start_session(user, remember=False)
        db.session.commit()
        flash(f"Welcome to the team, {user.name}. Your password is set.", "success")
        return redirect(home_for(user), code=303)
    return render_template("auth/invite.html", form=form, token=token, user=user)


def init_login(login_manager) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str):
        uid, _, token = user_id.partition(":")
        user_id = parse_id(uid)
        if user_id is None or not token:
            return None
        return services.signed_in_user(user_id, token)


def _requires(permission: str):
    """A decorator: signed in, and `current_user.<permission>` true; everyone else gets a 404
    (visitors are sent to sign in first), so staff pages do not reveal that they exist."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not getattr(current_user, permission):
                abort(404)
            return view(*args, **kwargs)

        return wrapped

    return decorator


agent_required = _requires("is_agent")  # agents and admins
admin_required = _requires("is_admin")
