"""What customers do with tickets: file, reply, mark solved, rate, follow up, find.

Functions validate, change the session and flush; the view commits once (or rolls back, and
then calls `attachments.remove_files` for anything already written to disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import FileStorage

from portal import signals
from portal.auth.models import User
from portal.db import utcnow
from portal.extensions import db
from portal.tickets import lifecycle, routing, sla
from portal.tickets.access import Viewer, own_or_copied, shared_organization_id
from portal.tickets.attachments import save_uploads
from portal.tickets.links import normalize
from portal.tickets.models import (
    Attachment,
    Channel,
    Message,
    Status,
    Ticket,
    TicketCategory,
    TicketCC,
    TicketType,
)
from portal.tickets.routing import OPEN_STATUSES

FILTERS = {
    "all": ("All", None),
    "open": ("Open", OPEN_STATUSES),
    "awaiting": ("Awaiting your reply", (Status.PENDING,)),
    "solved": ("Solved", (Status.SOLVED,)),
    "closed": ("Closed", (Status.CLOSED,)),
}
PAGE_SIZE = 20
RATINGS = ("good", "bad")


class TicketError(ValueError):
    """A user-facing reason a ticket action was refused."""


@dataclass
class NewTicket:
    subject: str
    description: str
    type: TicketType
    name: str
    email: str
    category: TicketCategory | None = None
    requester: User | None = None
    ccs: list[str] = field(default_factory=list)
    files: list[FileStorage] = field(default_factory=list)
    submission_key: str | None = None
    follow_up_of: Ticket | None = None
    channel: Channel = Channel.WEB


def active_categories() -> list[TicketCategory]:
    return list(
        db.session.scalars(
            select(TicketCategory)
            .where(TicketCategory.active.is_(True))
            .order_by(TicketCategory.position, TicketCategory.name)
        )
    )


def ticket_by_submission_key(key: str | None) -> Ticket | None:
    if not key:
        return None
    return db.session.scalar(select(Ticket).where(Ticket.submission_key == key))


def create_ticket(data: NewTicket) -> tuple[Ticket, list[Attachment]]:
    """Create the ticket, its first message, CCs and attachments; set SLA targets and route it.

    Raises AttachmentError before anything is kept when an upload is refused (the caller rolls
    back). A repeated `submission_key` is the caller's to check first (see
    `ticket_by_submission_key`); the unique column backs it up.
    """
    now = utcnow()
    requester = data.requester
    ticket = Ticket(
        subject=data.subject,
        type=data.type,
        channel=data.channel,
        category=data.category,
        requester=requester,
        requester_name=requester.name if requester else data.name,
        requester_email=normalize(requester.email if requester else data.email),
        organization_id=_organization_of(requester),
        submission_key=data.submission_key,
        follow_up_of_id=data.follow_up_of.id if data.follow_up_of else None,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )
    db.session.add(ticket)
    db.session.flush()
    message = Message(
        ticket=ticket,
        author=requester,
        author_name=ticket.requester_name,
        body=data.description,
        channel=data.channel,
        created_at=now,
    )
    db.session.add(message)
    for email in sorted(set(data.ccs) - {ticket.requester_email}):
        db.session.add(TicketCC(ticket=ticket, email=email))
    db.session.flush()
    saved = save_uploads(data.files, ticket, message)
    sla.apply_targets(ticket, now)
    lifecycle.record_event(ticket, "created", requester, None, data.channel.value)
    if data.follow_up_of is not None:
        lifecycle.record_event(ticket, "follow_up", requester, data.follow_up_of.reference, None)
        lifecycle.record_event(data.follow_up_of, "follow_up", requester, None, ticket.reference)
    routing.route_new_ticket(ticket)
    db.session.flush()
    signals.ticket_created.send(ticket)
    return ticket, saved


def _organization_of(requester: User | None) -> int | None:
    """A ticket joins its requester's organisation only through a confirmed membership."""
    if requester is None or requester.email_confirmed_at is None:
        return None
    return requester.organization_id


def add_customer_reply(
    ticket: Ticket,
    viewer: Viewer,
    body: str,
    files: list[FileStorage] | None = None,
    submission_key: str | None = None,
    channel: Channel = Channel.WEB,
) -> tuple[Message, list[Attachment], bool]:
    """Add the customer's public reply; returns (message, attachments, created).

    A reply to a ticket awaiting the customer moves it back to open and a reply to a solved one
    reopens it. A closed or merged ticket takes no replies. The same `submission_key` twice
    (a double click or a retried request) returns the first message.
    """
    if submission_key:
        earlier = db.session.scalar(select(Message).where(Message.submission_key == submission_key))
        if earlier is not None and earlier.ticket_id == ticket.id:
            return earlier, [], False
    if ticket.status == Status.CLOSED:
        raise TicketError(
            "This request is closed and takes no more replies. Create a follow-up instead."
        )
    if ticket.merged_into_id is not None:
        raise TicketError("This request was merged into another one. Reply there instead.")
    now = utcnow()
    message = Message(
        ticket=ticket,
        author=viewer.user if viewer.user and viewer.email == normalize(viewer.user.email)
        else None,
        author_name=viewer.name,
        body=body,
        channel=channel,
        submission_key=submission_key,
        created_at=now,
    )
    db.session.add(message)
    db.session.flush()
    saved = save_uploads(files, ticket, message)
    actor = message.author
    if ticket.status in (Status.PENDING, Status.SOLVED):
        lifecycle.change_status(ticket, Status.OPEN, actor)
    lifecycle.record_event(ticket, "reply", actor, None, message.id)
    lifecycle.touch(ticket)
    db.session.flush()
    return message, saved, True


def mark_solved(ticket: Ticket, viewer: Viewer) -> None:
    if not viewer.is_requester_of(ticket):
        raise TicketError(f"Only {ticket.requester_name}, who asked, can mark this solved.")
    if ticket.status == Status.SOLVED:
        return
    if ticket.status == Status.CLOSED:
        raise TicketError("This request is already closed.")
    lifecycle.change_status(ticket, Status.SOLVED, viewer.user)


def rate(ticket: Ticket, viewer: Viewer, rating: str, comment: str) -> None:
    """Record (or change) the one rating of a solved ticket, given by its requester."""
    if not viewer.is_requester_of(ticket):
        raise TicketError(f"Only {ticket.requester_name}, who asked, can rate this request.")
    if rating not in RATINGS:
        raise TicketError("Choose good or bad.")
    if ticket.status == Status.CLOSED:
        raise TicketError("This request is closed, so its rating can no longer change.")
    if ticket.status != Status.SOLVED:
        raise TicketError("You can rate a request once it is solved.")
    changed = ticket.csat_rating is not None
    ticket.csat_rating = rating
    ticket.csat_comment = comment
    ticket.csat_at = utcnow()
    lifecycle.record_event(
        ticket, "rating", viewer.user, "changed" if changed else None, rating
    )
    lifecycle.touch(ticket)


def claim_visitor_tickets(user: User) -> int:
    """Give a user with a newly confirmed email the tickets they filed as a visitor, and bring
    the ones they filed before confirming into their (now proven) organisation."""
    if user.organization_id is not None:
        db.session.execute(
            update(Ticket)
            .where(Ticket.requester_id == user.id, Ticket.organization_id.is_(None))
            .values(organization_id=user.organization_id)
        )
    result = db.session.execute(
        update(Ticket)
        .where(Ticket.requester_id.is_(None), Ticket.requester_email == normalize(user.email))
        .values(requester_id=user.id, organization_id=user.organization_id)
    )
    return result.rowcount or 0


def tickets_for_email(email: str) -> list[Ticket]:
    """Tickets this address requested or is CC'd on (newest first), for the re-sent links."""
    email = normalize(email)
    cc = exists().where(TicketCC.ticket_id == Ticket.id, TicketCC.email == email)
    return list(
        db.session.scalars(
            select(Ticket)
            .where(or_(Ticket.requester_email == email, cc))
            .order_by(Ticket.last_activity_at.desc())
            .limit(20)
        )
    )


@dataclass
class TicketPage:
    tickets: list[Ticket]
    total: int
    page: int
    pages: int


def customer_tickets(
    user: User, *, scope: str = "mine", status: str = "all", query: str = "", page: int = 1
) -> TicketPage:
    """One page of "My requests": mine (own and CC'd) or the shared organisation's."""
    org_id = shared_organization_id(user)
    if scope == "organization" and org_id is not None:
        condition = Ticket.organization_id == org_id
    else:
        condition = own_or_copied(user)
    stmt = select(Ticket).where(condition)
    statuses = FILTERS.get(status, FILTERS["all"])[1]
    if statuses:
        stmt = stmt.where(Ticket.status.in_(statuses))
    query = query.strip()
    if query:
        ticket_id = Ticket.id_from_reference(query)
        words = f"%{query.replace('%', '').replace('_', ' ')}%"
        in_messages = exists().where(
            Message.ticket_id == Ticket.id, Message.internal.is_(False), Message.body.ilike(words)
        )
        matches = [Ticket.subject.ilike(words), in_messages]
        if ticket_id:
            matches.append(Ticket.id == ticket_id)
        stmt = stmt.where(or_(*matches))
    return _ticket_page(stmt.order_by(Ticket.last_activity_at.desc(), Ticket.id.desc()), page)


def _ticket_page(stmt, page: int) -> TicketPage:
    """One page and the total in one statement (a window count: on PostgreSQL every
    statement is a round trip); a page past the end is clamped to the last one."""
    page = max(page, 1)
    rows = db.session.execute(
        stmt.add_columns(func.count().over()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    if not rows and page > 1:
        total = db.session.scalar(
            select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        return _ticket_page(stmt, max(1, -(-total // PAGE_SIZE))) if total else TicketPage(
            [], 0, 1, 1)
    total = rows[0][1] if rows else 0
    return TicketPage([row[0] for row in rows], total, page, max(1, -(-total // PAGE_SIZE)))


def public_messages(ticket: Ticket, after_id: int = 0) -> list[Message]:
    """The customer-visible thread (never internal notes), oldest first, attachments loaded."""
    return list(
        db.session.scalars(
            select(Message)
            .where(
                Message.ticket_id == ticket.id,
                Message.internal.is_(False),
                Message.id > after_id,
            )
            .options(joinedload(Message.attachments))  # one round trip, not two
            .order_by(Message.created_at, Message.id)
        ).unique()
    )
