"""Security headers, error pages, request-size limit and the unexpected-error page."""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, flash, redirect, render_template, request, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.extensions import htmx

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
    429: "Please wait a moment",
    500: "Something went wrong",
}


# Emailed links carry their token in the path: /auth/reset/<token>, /auth/invite/<token>, ...
_TOKEN_IN_PATH = re.compile(r"(/auth/(?:reset|invite|confirm)/)[^\s?\"/]+")


class RedactTokens(logging.Filter):
    """Keep single-use tokens out of access logs: whoever reads the log could use them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_PATH.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_access_logs() -> None:
    for name in ("werkzeug", "gunicorn.access"):
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in log.filters):
            log.addFilter(RedactTokens())


def set_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    return response


def _error_page(code: int, message: str | None = None, error_id: str | None = None):
    title = ERROR_TITLES.get(code, "Error")
    if request.path.startswith("/api/"):  # no such API route, or a failure outside its views
        from portal.api.core import problem_response

        detail = message or (f"Error reference {error_id}." if error_id else None)
        return problem_response(code, detail)
    try:
        body = render_template(
            "errors/error.html", code=code, title=title, message=message, error_id=error_id
        )
    except Exception:  # the layout itself failed (say, the database is down): stay friendly
        logger.exception("Error page %s could not be rendered", code)
        body = (
            f"<!doctype html><html lang=en><title>{title}</title><main><h1>{title}</h1>"
            f"<p>Please try again in a moment.</p>"
            + (f"<p>Error reference: <code>{error_id}</code></p>" if error_id else "")
            + "</main></html>"
        )
    headers = {}
    if htmx:  # show the error page in place of the whole page, not inside a small target
        headers = {"HX-Retarget": "body", "HX-Reswap": "innerHTML"}
    return body, code, headers


def init_app(app: Flask) -> None:
    app.after_request(set_security_headers)
    redact_access_logs()
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies:
        # Behind a reverse proxy: take the client address (rate limits) and scheme from it.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

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
        logger.warning("Rate limit %s hit on %s", exc.limit.limit, request.path)
        if exc.limit.error_message:
            return _error_page(429, exc.description)
        what = "sign-in attempts" if request.endpoint == "auth.login" else "attempts"
        return _error_page(
            429,
            f"Too many {what} from your network in a short time. For your security, wait a "
            "minute and try again. Forgotten your password? Reset it from the sign-in page.",
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
