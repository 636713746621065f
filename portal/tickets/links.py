"""Signed ticket links: open one ticket as one email address, without a password.

A token names the ticket and the email it was sent to. It expires after TICKET_LINK_MAX_AGE
and is honoured only while that email is still the ticket's requester or one of its CCs, so a
forwarded link for one ticket can never open another, and a removed CC loses access.
"""

from __future__ import annotations

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from portal.extensions import db
from portal.tickets.models import Ticket

_SALT = "ticket-link"


class LinkError(ValueError):
    """A user-facing reason a ticket link does not work."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def normalize(email: str) -> str:
    return email.strip().lower()


def make_ticket_token(ticket: Ticket, email: str) -> str:
    return _serializer().dumps({"t": ticket.id, "e": normalize(email)})


def ticket_link(ticket: Ticket, email: str, **params) -> str:
    """Absolute URL (from BASE_URL) that opens `ticket` for `email`."""
    path = url_for("tickets.open_link", token=make_ticket_token(ticket, email), **params)
    return current_app.config["BASE_URL"].rstrip("/") + path


def ticket_emails(ticket: Ticket) -> set[str]:
    """Addresses a ticket link may be bound to: the requester's and the CCs'."""
    emails = {normalize(ticket.requester_email)}
    if ticket.requester is not None:
        emails.add(normalize(ticket.requester.email))
    emails.update(normalize(cc.email) for cc in ticket.ccs)
    return emails


def verify_ticket_token(token: str) -> tuple[Ticket, str]:
    """Return (ticket, email) for a valid token, or raise LinkError."""
    max_age = current_app.config["TICKET_LINK_MAX_AGE"]
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise LinkError(
            "This link has expired. Enter your email below and we will send you a new one."
        ) from exc
    except BadSignature as exc:
        raise LinkError(
            "This link is not valid. Enter your email below and we will send you a new one."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("t"), int):
        raise LinkError("This link is not valid. Enter your email below for a new one.")
    ticket = db.session.get(Ticket, data["t"])
    email = str(data.get("e", ""))
    if ticket is None or email not in ticket_emails(ticket):
        raise LinkError("This link no longer opens a request. Enter your email for a new one.")
    return ticket, email
