"""Security headers, error pages, request-size limit and the unexpected-error page."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, flash, redirect, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)

ERROR_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong",
}


def set_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    return response


def _error_page(code: int, message: str | None = None, error_id: str | None = None):
    return (
        render_template(
            "errors/error.html",
            code=code,
            title=ERROR_TITLES.get(code, "Error"),
            message=message,
            error_id=error_id,
        ),
        code,
    )


def init_app(app: Flask) -> None:
    app.after_request(set_security_headers)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        logger.info("CSRF check failed on %s: %s", request.path, exc.description)
        return _error_page(
            400,
            "This form has expired or was not sent from this site. Go back, reload the page "
            "and try again; nothing was changed.",
        )

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc):
        return _error_page(
            429, "Too many attempts in a short time. Wait a minute and try again."
        )

    @app.errorhandler(413)
    def too_large(exc):
        limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        if request.referrer and request.referrer.startswith(request.host_url):
            flash(f"That upload was too large: the whole request may be at most {limit} MB.",
                  "error")
            return redirect(request.referrer, code=303)
        return _error_page(413, f"The request was larger than {limit} MB, the most we accept.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        return _error_page(exc.code, exc.description if exc.code == 400 else None)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        error_id = secrets.token_hex(4)
        logger.exception("Unexpected error %s on %s %s", error_id, request.method, request.path)
        from portal.extensions import db

        db.session.rollback()
        return _error_page(500, None, error_id)

    @app.route("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.route("/favicon.ico")
    def favicon():
        return redirect(url_for("static", filename="favicon.svg"), code=301)
