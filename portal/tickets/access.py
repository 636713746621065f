"""Who may see a ticket on the customer side.

A signed-in customer sees their own tickets, tickets they are CC'd on, and, where their
organisation shares tickets, their organisation's. A visitor sees a ticket they opened through
a signed link (the grant lives in their session). Anything else is a 404, exactly like a
reference that does not exist.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import abort, session
from flask_login import current_user
from sqlalchemy import ColumnElement, bindparam, exists, or_, select
from sqlalchemy.orm import joinedload

from portal.auth.models import User
from portal.db import json_rows
from portal.extensions import db
from portal.tickets.links import normalize
from portal.tickets.models import Ticket, TicketCC
from portal.tickets.thread import (
    PUBLIC_THREAD,
    THREAD_ORDER,
    ThreadMessage,
    thread_from_json,
    thread_of,
)

_GRANTS = "ticket_grants"  # session key: {ticket id: email the signed link was bound to}
MAX_GRANTS = 20


@dataclass(frozen=True)
class Viewer:
    """The person looking at a ticket: a signed-in user, or a visitor with a signed link."""

    user: User | None
    email: str
    name: str

    def is_requester_of(self, ticket: Ticket) -> bool:
        """The person who asked: only they mark the ticket solved and rate it (not CCs or
        colleagues who follow it)."""
        if self.user is not None and ticket.requester_id == self.user.id:
            return True
        return self.email == normalize(ticket.requester_email)


def shared_organization_id(user: User) -> int | None:
    """The organisation whose tickets this customer may read, or None.

    Membership comes from the email's domain, so it counts only once the address is confirmed
    (an address change drops it until the new one is): typing someone's domain proves nothing.
    """
    org = user.organization
    if org is None or not org.shares_tickets or user.email_confirmed_at is None:
        return None
    return org.id


def shares_with(user: User) -> bool:
    return shared_organization_id(user) is not None


def customer_can_see(user: User | None, ticket: Ticket) -> bool:
    """True when this signed-in user may read the ticket on the customer side."""
    if user is None or not user.is_authenticated:
        return False
    if user.is_agent:
        return True
    if ticket.requester_id == user.id:
        return True
    if user.email_confirmed_at is not None and normalize(user.email) in {
        normalize(cc.email) for cc in ticket.ccs
    }:
        return True
    org_id = shared_organization_id(user)
    return org_id is not None and ticket.organization_id == org_id


def own_or_copied(user: User) -> ColumnElement[bool]:
    """SQL condition: tickets the user asked, or is CC'd on (confirmed address)."""
    condition = Ticket.requester_id == user.id
    if user.email_confirmed_at is not None:
        condition = condition | exists().where(TicketCC.ticket_id == Ticket.id,
                                               TicketCC.email == normalize(user.email))
    return condition


def visible_to(user: User) -> ColumnElement[bool]:
    """SQL condition for the tickets `customer_can_see` allows: own, CC'd on, and the
    shared organisation's (both with a confirmed address)."""
    org_id = shared_organization_id(user)
    if org_id is None:
        return own_or_copied(user)
    return or_(own_or_copied(user), Ticket.organization_id == org_id)


def grant(ticket: Ticket, email: str) -> None:
    """Remember in the session that this browser opened `ticket` through a link for `email`."""
    grants = {k: v for k, v in session.get(_GRANTS, {}).items() if k != str(ticket.id)}
    grants[str(ticket.id)] = email
    # The cookie stays small: the most recent links win.
    session[_GRANTS] = dict(list(grants.items())[-MAX_GRANTS:])


def granted_email(ticket: Ticket) -> str | None:
    return session.get(_GRANTS, {}).get(str(ticket.id))


def viewer_for(ticket: Ticket) -> Viewer | None:
    user = current_user if current_user.is_authenticated else None
    if user is not None and customer_can_see(user, ticket):
        return Viewer(user, user.email, user.name)
    email = granted_email(ticket)
    if email is not None:
        from portal.tickets.links import ticket_emails

        if email in ticket_emails(ticket):
            name = ticket.requester_name if email == normalize(ticket.requester_email) else email
            return Viewer(user, email, name)
    return None


# What every ticket page shows of it, in the same statement (not a lazy load each).
_SHOWN = (joinedload(Ticket.requester), joinedload(Ticket.category), joinedload(Ticket.ccs))


def get_ticket_or_404(reference: str) -> tuple[Ticket, Viewer]:
    """The ticket named by `reference` and who is viewing it; 404 when they may not see it."""
    ticket_id = Ticket.id_from_reference(reference)
    ticket = db.session.get(Ticket, ticket_id, options=_SHOWN) if ticket_id else None
    return ticket, _viewer_or_404(ticket)


def get_ticket_and_thread_or_404(reference: str) -> tuple[Ticket, Viewer, list[ThreadMessage]]:
    """`get_ticket_or_404` and what the viewer may read of the conversation (never an
    internal note), as rows. On PostgreSQL the conversation is a JSON column of the ticket's
    statement: one round trip to a server sharing the CPU, where two were. Read before the
    access check, it is shown only after it."""
    ticket_id = Ticket.id_from_reference(reference)
    if not ticket_id:
        abort(404)
    if db.engine.dialect.name == "postgresql":
        row = db.session.execute(_ticket_and_thread(), {"ticket_id": ticket_id}
                                 ).unique().first()
        ticket, messages = (row[0], thread_from_json(row[1])) if row else (None, [])
        return ticket, _viewer_or_404(ticket), messages
    ticket = db.session.get(Ticket, ticket_id, options=_SHOWN)
    viewer = _viewer_or_404(ticket)
    return ticket, viewer, thread_of(db.session.execute(PUBLIC_THREAD, {"ticket_id": ticket.id}))


@functools.cache
def _ticket_and_thread():
    return (select(Ticket, json_rows(PUBLIC_THREAD, THREAD_ORDER, "postgresql"))
            .where(Ticket.id == bindparam("ticket_id")).options(*_SHOWN))


def _viewer_or_404(ticket: Ticket | None) -> Viewer:
    viewer = viewer_for(ticket) if ticket is not None else None
    if viewer is None:
        abort(404)
    return viewer
