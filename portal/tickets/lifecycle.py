"""The ticket state machine and the activity timeline.

Every change to a ticket goes through these functions so that each one is validated, timestamped
and recorded as a `TicketEvent` (the timeline, and the raw data for every support metric).
Callers flush/commit; nothing here commits.
"""

from __future__ import annotations

from portal import signals
from portal.auth.models import User
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.models import Status, Ticket, TicketEvent

# new -> open -> pending (awaiting customer) | on-hold -> solved -> closed
TRANSITIONS: dict[Status, set[Status]] = {
    Status.NEW: {Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED},
    Status.OPEN: {Status.PENDING, Status.ON_HOLD, Status.SOLVED},
    Status.PENDING: {Status.OPEN, Status.ON_HOLD, Status.SOLVED},
    Status.ON_HOLD: {Status.OPEN, Status.PENDING, Status.SOLVED},
    Status.SOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: set(),
}

# What a customer reads for each status.
CUSTOMER_STATUS = {
    Status.NEW: "Received",
    Status.OPEN: "In progress",
    Status.PENDING: "Awaiting your reply",
    Status.ON_HOLD: "In progress",
    Status.SOLVED: "Solved",
    Status.CLOSED: "Closed",
}

# Event kinds a customer may see on their ticket's timeline.
PUBLIC_EVENT_KINDS = {"created", "status", "reply", "rating", "merge", "follow_up"}


class TransitionError(ValueError):
    """A status change the state machine does not allow."""


def record_event(
    ticket: Ticket,
    kind: str,
    actor: User | None,
    old=None,
    new=None,
    *,
    public: bool | None = None,
) -> TicketEvent:
    event = TicketEvent(
        ticket_id=ticket.id,
        actor_id=actor.id if actor else None,
        kind=kind,
        old_value=None if old is None else str(old)[:200],
        new_value=None if new is None else str(new)[:200],
        public=kind in PUBLIC_EVENT_KINDS if public is None else public,
        created_at=utcnow(),
    )
    db.session.add(event)
    signals.ticket_event_recorded.send(event, ticket=ticket)
    return event


def record_first_response(ticket: Ticket, now) -> None:
    """The first public agent reply stops the first-response clock (a late one is a breach)."""
    if ticket.first_response_at is not None:
        return
    ticket.first_response_at = now
    _record_breach_if_late(ticket, now, "first_response")


def _record_breach_if_late(ticket: Ticket, now, target: str) -> None:
    """Flag and record a breach of `target` ("first_response" or "resolution") once."""
    due = getattr(ticket, f"{target}_due_at")
    if due is not None and now > due and not getattr(ticket, f"{target}_breached"):
        setattr(ticket, f"{target}_breached", True)
        record_event(ticket, "breach", None, None, target)


def touch(ticket: Ticket) -> None:
    now = utcnow()
    ticket.updated_at = now
    ticket.last_activity_at = now
    ticket.stale_at = None  # activity clears a stale-ticket alert


def can_transition(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]


def change_status(ticket: Ticket, new: Status, actor: User | None) -> bool:
    """Move the ticket to `new`, keeping SLA pauses and timestamps right.

    Returns False when the ticket already has that status; raises TransitionError when the
    move is not allowed.
    """
    old = ticket.status
    if new == old:
        return False
    if not can_transition(old, new):
        raise TransitionError(
            f"A ticket that is {old.value.replace('_', ' ')} cannot become "
            f"{new.value.replace('_', ' ')}."
        )
    now = utcnow()
    from portal.tickets import sla

    if old == Status.PENDING:
        sla.resume(ticket, now)
    if new == Status.PENDING:
        sla.pause(ticket, now)
    if new == Status.SOLVED:
        ticket.solved_at = now
        _record_breach_if_late(ticket, now, "resolution")
    if old == Status.SOLVED and new == Status.OPEN:
        ticket.reopen_count += 1
        ticket.solved_at = None
    if new == Status.CLOSED:
        ticket.closed_at = now
    ticket.status = new
    touch(ticket)
    record_event(ticket, "status", actor, old.value, new.value)
    return True
