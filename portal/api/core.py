"""The API blueprint and its conventions: bearer tokens and scopes, RFC 9457 problem details,
per-token rate limits, cursor pagination, ETags and `Idempotency-Key`.

Only the `Authorization: Bearer` header authenticates here: session cookies are ignored, so
there is nothing for a cross-site request to ride on and the blueprint is exempt from CSRF.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import time
from datetime import datetime, timedelta

from flask import current_app, g, make_response, request, url_for
from flask_smorest import Blueprint
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from portal.api import tokens
from portal.api.models import ApiToken, IdempotencyRecord
from portal.auth.models import User
from portal.db import utcnow
from portal.extensions import db, limiter

log = logging.getLogger(__name__)

blp = Blueprint("api", __name__, url_prefix="/api/v1",
                description="The portal's REST API (bearer tokens; see /api/v1/docs)")

DEFAULT_LIMIT, MAX_LIMIT = 25, 100
IDEMPOTENCY_WINDOW = timedelta(hours=24)
PROBLEM_TYPE = "about:blank"


class Problem(HTTPException):
    """An RFC 9457 problem: raise it anywhere in an API view."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 errors: list[dict] | None = None, headers: dict | None = None) -> None:
        super().__init__(detail)
        self.code = status
        self.title = title
        self.errors = errors or []
        self.extra_headers = headers or {}


def problem_response(status: int, detail: str | None = None, *, title: str | None = None,
                     errors: list[dict] | None = None, headers: dict | None = None):
    body = {"type": PROBLEM_TYPE, "title": title or HTTP_STATUS_CODES.get(status, "Error"),
            "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = make_response(json.dumps(body), status)
    response.headers["Content-Type"] = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _field_errors(messages, prefix: str = "") -> list[dict]:
    """webargs/marshmallow messages ({"json": {"field": ["msg"]}}) as a flat list."""
    errors = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "headers", "form", "files", "view_args") and not prefix:
                errors += _field_errors(value, "")
            else:
                errors += _field_errors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        errors += [{"field": prefix or None, "message": m} for m in messages]
    elif isinstance(messages, list):
        for i, item in enumerate(messages):
            errors += _field_errors(item, f"{prefix}[{i}]")
    else:
        errors.append({"field": prefix or None, "message": str(messages)})
    return errors


def _handle_http(exc: HTTPException):
    if isinstance(exc, Problem):
        return problem_response(exc.code, exc.description, title=exc.title, errors=exc.errors,
                                headers=exc.extra_headers)
    code = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = _field_errors(data["messages"]) if "messages" in data else None
    detail = "The request has invalid fields." if errors else exc.description
    headers = dict(exc.get_headers()) if code in (405, 429) else {}
    headers.pop("Content-Type", None)
    if code == 429:
        detail = "Too many requests for this token. Wait for the time in Retry-After."
    return problem_response(code, detail, errors=errors, headers=headers)


def _handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _handle_http(exc)
    log.exception("API error on %s %s", request.method, request.path)
    db.session.rollback()
    return problem_response(500, "Something went wrong on our side; nothing was changed.")


# Code-specific handlers, so the app's HTML error pages (registered per code) never answer here.
for _code in default_exceptions:
    blp.register_error_handler(_code, _handle_http)
blp.register_error_handler(HTTPException, _handle_http)
blp.register_error_handler(Exception, _handle_unexpected)


# --- authentication, scopes, rate limits ---------------------------------------------------

def _rate_key() -> str:
    """Per token (the public part of the header, checked for real just after), else per IP."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    parts = tokens.parse(value.strip()) if scheme.lower() == "bearer" else None
    return f"api-token:{parts[0]}" if parts else f"api-ip:{request.remote_addr}"


def _cost() -> int:
    return 1 if request.method in ("GET", "HEAD", "OPTIONS") else 2  # writes count double


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_rate_key, cost=_cost,
              per_method=False)(blp)


@blp.before_request
def authenticate():
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    token = tokens.authenticate(value.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        raise Problem(401, "Send a valid API token: `Authorization: Bearer hdp_…`. "
                      "Cookies are not accepted here.",
                      headers={"WWW-Authenticate": 'Bearer realm="api"'})
    g.api_token = token
    if tokens.use_is_stale(token, request.remote_addr):
        with db.writing():  # a short write transaction, even inside a GET
            tokens.record_use(token, request.remote_addr)


@blp.after_request
def rate_limit_headers(response):
    current = limiter.current_limit
    if current is not None:
        response.headers["RateLimit-Limit"] = str(current.limit.amount)
        response.headers["RateLimit-Remaining"] = str(max(0, current.remaining))
        response.headers["RateLimit-Reset"] = str(max(0, int(current.reset_at - time.time())))
    response.headers["Cache-Control"] = "no-store"
    return response


def token() -> ApiToken:
    return g.api_token


def caller() -> User:
    return g.api_token.user


def require(scope: str, *, staff: bool = False, admin: bool = False) -> User:
    """The caller, if their token has `scope` and their role allows; else a 403."""
    user = caller()
    if scope not in token().scope_set:
        raise Problem(403, f"This token lacks the {scope} scope.")
    if (admin and not user.is_admin) or (staff and not user.is_agent):
        raise Problem(403, "Your role does not allow this.")
    return user


def not_found(what: str = "resource"):
    return Problem(404, f"No such {what}, or it is not visible to this token.")


# --- writes: one transaction, idempotency ---------------------------------------------------

def _request_hash() -> str:
    return hashlib.sha256(
        request.method.encode() + b" " + request.full_path.encode() + b"\n" + request.get_data()
    ).hexdigest()


def writes(view):
    """Commit the view's changes once, with the stored response of an `Idempotency-Key`.

    A repeat of the same key within 24 h returns the first response (`Idempotent-Replayed:
    true`) and changes nothing; the same key with another body is a 422; a concurrent
    duplicate loses the race on the unique key and gets a 409.
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is not None:
            key = key.strip()
            if not 1 <= len(key) <= 255:
                raise Problem(400, "Idempotency-Key must be 1 to 255 characters.")
            earlier = db.session.scalar(select(IdempotencyRecord).where(
                IdempotencyRecord.token_id == token().id, IdempotencyRecord.key == key))
            if earlier is not None and earlier.created_at < utcnow() - IDEMPOTENCY_WINDOW:
                db.session.delete(earlier)
                db.session.flush()
                earlier = None
            if earlier is not None:
                if earlier.request_hash != _request_hash():
                    raise Problem(422, "This Idempotency-Key was used with a different request.")
                db.session.rollback()
                response = make_response(earlier.body, earlier.status_code)
                response.headers["Content-Type"] = "application/json"
                response.headers["Idempotent-Replayed"] = "true"
                if earlier.location:
                    response.headers["Location"] = earlier.location
                return response
        try:
            response = make_response(view(*args, **kwargs))
        except Exception:
            db.session.rollback()
            raise
        if response.status_code >= 400:
            db.session.rollback()
            return response
        if key is not None:
            db.session.add(IdempotencyRecord(
                token_id=token().id, key=key, request_hash=_request_hash(),
                status_code=response.status_code, body=response.get_data(as_text=True),
                location=response.headers.get("Location"), created_at=utcnow()))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            raise Problem(409, "A request with this Idempotency-Key is in progress.") from None
        return response

    return wrapper


def purge_idempotency(now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - IDEMPOTENCY_WINDOW
    return db.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)).rowcount or 0


# --- ETags -----------------------------------------------------------------------------------

def check_if_match(current_etag: str) -> None:
    """A stale `If-Match` is a 412, like the editor's conflict check."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    candidates = {w.strip().removeprefix("W/") for w in wanted.split(",")}
    if "*" not in candidates and current_etag not in candidates:
        raise Problem(412, "The resource changed since you read it: GET it again, then retry.",
                      headers={"ETag": current_etag})


# --- cursor pagination -----------------------------------------------------------------------

def encode_cursor(moment: datetime, ident: int) -> str:
    raw = f"{moment.isoformat()}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, ident = raw.partition("|")
        return datetime.fromisoformat(moment), int(ident)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "The cursor is not one this API gave out.",
                      errors=[{"field": "cursor", "message": "Invalid cursor."}]) from None


def keyset_page(stmt, time_column, id_column, *, cursor: str | None, limit: int,
                newest_first: bool = True):
    """Rows after `cursor` in (time, id) order, and the next cursor (None at the end)."""
    if cursor:
        moment, ident = decode_cursor(cursor)
        if newest_first:
            stmt = stmt.where(or_(time_column < moment,
                                  and_(time_column == moment, id_column < ident)))
        else:
            stmt = stmt.where(or_(time_column > moment,
                                  and_(time_column == moment, id_column > ident)))
    order = (time_column.desc(), id_column.desc()) if newest_first else (time_column, id_column)
    rows = list(db.session.scalars(stmt.order_by(*order).limit(limit + 1)).unique())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))
    return rows, next_cursor


def page_body(data: list, next_cursor: str | None, endpoint: str, **values):
    """The list envelope, with an RFC 8288 `Link: <…>; rel="next"` header when there is more.

    Lists skip the marshmallow dump (the dicts already have the documented shape; the
    schema-driven tests check it against the OpenAPI document): at 100 rows it was half the
    time of the request.
    """
    body = {"data": data, "next_cursor": next_cursor, "has_more": next_cursor is not None}
    response = current_app.json.response(body)
    if next_cursor:
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        link = url_for(endpoint, **{**args, **values, "cursor": next_cursor})
        response.headers["Link"] = f'<{link}>; rel="next"'
    return response
