"""Ticket emails. Every recipient gets a link signed for their own address; internal notes
never produce an email."""

from __future__ import annotations

from flask import current_app

from portal.mail import send_mail
from portal.tickets.links import normalize, ticket_emails, ticket_link
from portal.tickets.models import Message, Ticket


def recipients(ticket: Ticket, exclude: str | None = None) -> list[str]:
    """Requester first, then CCs; each address once; `exclude` (the author) and addresses
    whose mail for this ticket bounced left out."""
    from portal.inbound.services import bouncing_addresses

    seen: set[str] = bouncing_addresses(ticket.id) if ticket.id else set()
    result = []
    for email in [ticket.requester_email, *(cc.email for cc in ticket.ccs)]:
        key = normalize(email)
        if key and key not in seen and key != normalize(exclude or ""):
            seen.add(key)
            result.append(email)
    return result


def _subject(ticket: Ticket, text: str) -> str:
    return f"[{ticket.reference}] {text}"


def _link_days() -> int:
    return max(1, current_app.config["TICKET_LINK_MAX_AGE"] // 86400)


def _send_each(ticket: Ticket, emails: list[str], subject: str, template: str, **ctx) -> None:
    for email in emails:
        send_mail(
            email, subject, template,
            ticket=ticket, link=ticket_link(ticket, email), link_days=_link_days(),
            is_requester=normalize(email) == normalize(ticket.requester_email), **ctx,
        )


def notify_ticket_created(ticket: Ticket,
                          suggestions: list[tuple[str, str]] | None = None) -> None:
    """`suggestions`: (title, URL) of articles that may answer it, for the requester."""
    _send_each(
        ticket, recipients(ticket), _subject(ticket, f"We received your request: {ticket.subject}"),
        "ticket_created", suggestions=suggestions or [],
    )


def notify_public_reply(ticket: Ticket, message: Message, author_email: str | None = None) -> None:
    """Email a public message to the requester and CCs, but not to its own author.

    `author_email` names a visitor author (who has no account); for users it is read from
    the message.
    """
    if message.internal:
        return
    if message.author is not None:
        author_email = message.author.email
    _send_each(
        ticket, recipients(ticket, exclude=author_email),
        _subject(ticket, f"Re: {ticket.subject}"), "ticket_reply", message=message,
    )


def notify_solved(ticket: Ticket) -> None:
    """The "solved" email; the requester's has one-click links to rate the support."""
    for email in recipients(ticket):
        is_requester = normalize(email) == normalize(ticket.requester_email)
        send_mail(
            email, _subject(ticket, f"Solved: {ticket.subject}"), "ticket_solved",
            ticket=ticket, link=ticket_link(ticket, email), link_days=_link_days(),
            good_link=ticket_link(ticket, email, rating="good") if is_requester else None,
            bad_link=ticket_link(ticket, email, rating="bad") if is_requester else None,
            is_requester=is_requester,
        )


def notify_merged(source: Ticket, target: Ticket) -> None:
    """Tell the source's people their request continues in `target`.

    Only people who may read the target (its requester and CCs) learn its reference and
    subject: a merge across customers tells the others that their request was closed.
    The link opens the source, which points on to the target for whoever may see it.
    """
    readers = ticket_emails(target)
    for email in recipients(source):
        shown = target if normalize(email) in readers else None
        text = (f"Your request continues as {target.reference}" if shown
                else "Your request was merged and closed")
        send_mail(
            email, _subject(source, text), "ticket_merged",
            ticket=source, target=shown, link=ticket_link(source, email),
            link_days=_link_days(),
        )


def send_ticket_links(email: str, tickets: list[Ticket]) -> None:
    """The "find my request" email: a fresh link for each of this address's requests."""
    if not tickets:
        return
    links = [(ticket, ticket_link(ticket, email)) for ticket in tickets]
    send_mail(
        email, "Links to your support requests", "ticket_links",
        links=links, link_days=_link_days(),
    )
