"""HTML pages of the API: the reference (rendered on the server from the OpenAPI document, so
it needs no script and fits the CSP) and API tokens in account settings."""

from __future__ import annotations

from datetime import datetime, time

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from portal.api import pages, tokens
from portal.api.forms import NewTokenForm
from portal.api.models import SCOPES, ApiToken
from portal.db import utcnow
from portal.extensions import db
from portal.forms import select_options

METHODS = ("get", "post", "put", "patch", "delete")


@pages.route("/api/v1/docs")
def reference():
    spec = current_app.extensions["portal_api"].spec.to_dict()
    operations = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                operations.append((item[method].get("tags", ["Other"])[0], path, method.upper(),
                                   item[method]))
    operations.sort(key=lambda o: (o[0], o[1], METHODS.index(o[2].lower())))
    return render_template("api/reference.html", spec=spec, operations=operations,
                           scopes=SCOPES)


def _form() -> NewTokenForm:
    form = NewTokenForm()
    form.scopes.choices = select_options(
        (s, f"{s}: {SCOPES[s]}") for s in tokens.allowed_scopes(current_user))
    return form


def _page(form: NewTokenForm, created: str | None = None, status: int = 200):
    response = current_app.make_response((render_template(
        "account/api_tokens.html", form=form, tokens=tokens.tokens_of(current_user),
        created=created, now=utcnow()), status))
    response.headers["Cache-Control"] = "no-store"  # the page may show a new secret
    return response


@pages.route("/account/api-tokens", methods=["GET", "POST"])
@login_required
def api_tokens():
    form = _form()
    if form.validate_on_submit():
        expires = (datetime.combine(form.expires_on.data, time.max.replace(microsecond=0))
                   if form.expires_on.data else None)
        try:
            token, text = tokens.create_token(current_user, form.name.data, form.scopes.data,
                                              expires)
        except tokens.TokenError as exc:
            form.name.errors = [*form.name.errors, str(exc)]
            return _page(form, status=400)
        db.session.commit()
        return _created(token, text)
    return _page(form, status=400 if form.errors else 200)


def _created(token: ApiToken, text: str):
    """The token text is on this response only (not in a URL, never again); only its hash
    is kept."""
    form = _form()
    form.process(formdata=None)
    flash(f"Token “{token.name}” created. Copy it now: it will not be shown again.", "success")
    return _page(form, created=text)


@pages.route("/account/api-tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    tokens.revoke(token)
    db.session.commit()
    flash(f"Token “{token.name}” revoked.", "success")
    return redirect(url_for("api_pages.api_tokens"), code=303)
