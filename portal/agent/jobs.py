"""Time-driven ticket work: auto-closing solved tickets, SLA breaches and escalation.

The job workers run them on a schedule (`portal.agent.tasks`); `flask --app app tickets
autoclose` and `flask --app app tickets escalate` run them by hand (both idempotent). The same
checks run when a ticket is read, and when the queue is read while no worker runs them, so a
stopped worker never leaves a stale status on screen.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import selectinload

from portal.converters import parse_id
from portal.db import utcnow
from portal.extensions import db
from portal.jobs import services as jobs_services
from portal.mail import send_mail
from portal.tickets.lifecycle import change_status, record_event
from portal.tickets.models import SLA_CHECK_PREDICATE, Group, Setting, Status, Ticket
from portal.tickets.sla import DUE_SOON

logger = logging.getLogger(__name__)

AUTOCLOSE_KEY = "autoclose_days"
WORKING = (Status.NEW, Status.OPEN, Status.ON_HOLD)  # the SLA clock runs


def autoclose_days() -> int:
    setting = db.session.get(Setting, AUTOCLOSE_KEY)
    days = parse_id(setting.value) if setting is not None else None
    if days is not None:
        return days
    return int(current_app.config["AUTOCLOSE_DAYS"])


def autoclose(now: datetime | None = None, limit: int = 5000) -> int:
    """Close tickets solved more than the set number of days ago; returns how many."""
    now = now or utcnow()
    cutoff = now - timedelta(days=autoclose_days())
    tickets = db.session.scalars(
        select(Ticket)
        .where(Ticket.status == Status.SOLVED, Ticket.solved_at <= cutoff)
        .limit(limit)
    ).all()
    for ticket in tickets:
        change_status(ticket, Status.CLOSED, None)
    db.session.flush()
    return len(tickets)


def _due_condition(horizon: datetime):
    return and_(
        Ticket.status.in_(WORKING),
        or_(
            Ticket.resolution_due_at <= horizon,
            and_(Ticket.first_response_at.is_(None), Ticket.first_response_due_at <= horizon),
        ),
    )


def flag_breaches(ticket: Ticket, now: datetime) -> bool:
    """Mark targets that have passed; record a "breach" event for each."""
    if ticket.status not in WORKING:
        return False
    flagged = False
    if (
        ticket.first_response_at is None
        and ticket.first_response_due_at is not None
        and ticket.first_response_due_at <= now
        and not ticket.first_response_breached
    ):
        ticket.first_response_breached = True
        record_event(ticket, "breach", None, None, "first_response")
        flagged = True
    if (
        ticket.resolution_due_at is not None
        and ticket.resolution_due_at <= now
        and not ticket.resolution_breached
    ):
        ticket.resolution_breached = True
        record_event(ticket, "breach", None, None, "resolution")
        flagged = True
    return flagged


def needs_escalation(ticket: Ticket, now: datetime) -> bool:
    if ticket.status not in WORKING or ticket.escalated_at is not None:
        return False
    horizon = now + DUE_SOON
    first_due = ticket.first_response_at is None and (
        ticket.first_response_due_at is not None and ticket.first_response_due_at <= horizon
    )
    return first_due or (
        ticket.resolution_due_at is not None and ticket.resolution_due_at <= horizon
    )


def escalate(ticket: Ticket, now: datetime) -> None:
    """Flag the ticket, record the escalation and email its assignee and group."""
    ticket.escalated_at = now
    due = min(
        d for d in (
            ticket.first_response_due_at if ticket.first_response_at is None else None,
            ticket.resolution_due_at,
        ) if d is not None
    )
    record_event(ticket, "escalation", None, None, "breached" if due <= now else "due soon")
    recipients = _escalation_recipients(ticket)
    if recipients:
        send_mail(
            recipients,
            f"[{ticket.reference}] SLA {'breached' if due <= now else 'due soon'}: "
            f"{ticket.subject}",
            "agent_escalation",
            ticket=ticket,
            thread=False,  # for agents only: a reply must not become a public message
            due=due,
            breached=due <= now,
            url=current_app.config["BASE_URL"].rstrip("/") + f"/agent/tickets/{ticket.id}",
        )


def _escalation_recipients(ticket: Ticket) -> list[str]:
    emails: list[str] = []
    if ticket.assignee is not None and ticket.assignee.active:
        emails.append(ticket.assignee.email)
    if ticket.group is not None:
        emails += [m.email for m in ticket.group.members if m.active and m.email not in emails]
    return emails


def check_sla(now: datetime | None = None, limit: int = 2000,
              escalating: bool = True) -> tuple[int, int]:
    """Flag breaches and escalate tickets near or past breach; returns (breaches, escalations).
    Not `escalating`: breaches are flagged, nothing escalated (no mail)."""
    now = now or utcnow()
    unflagged = or_(
        and_(Ticket.resolution_due_at <= now, Ticket.resolution_breached.is_(False)),
        and_(
            Ticket.first_response_at.is_(None),
            Ticket.first_response_due_at <= now,
            Ticket.first_response_breached.is_(False),
        ),
    )
    tickets = db.session.scalars(
        select(Ticket)
        # Read from ix_tickets_sla_check, which holds only the tickets with something left to
        # flag (the planner proves it applies from this literal term, and walks it for the
        # order): through the status indexes every waiting ticket due so far was read, nearly
        # all escalated and breached long ago (90,000 at a million tickets).
        .where(text(SLA_CHECK_PREDICATE[db.engine.dialect.name]))
        .where(_due_condition(now + DUE_SOON))
        .where(or_(Ticket.escalated_at.is_(None), unflagged) if escalating else unflagged)
        # Escalating mails the assignee and the group's members: loaded with the tickets.
        .options(*(
            selectinload(Ticket.assignee),
            selectinload(Ticket.group).selectinload(Group.members),
        ) if escalating else ())
        .order_by(Ticket.resolution_due_at, Ticket.first_response_due_at)
        .limit(limit)
    ).all()
    breaches = escalations = 0
    for ticket in tickets:
        breaches += flag_breaches(ticket, now)
        if escalating and needs_escalation(ticket, now):
            escalate(ticket, now)
            escalations += 1
    db.session.flush()
    return breaches, escalations


def _autoclose_due(ticket: Ticket, now: datetime) -> bool:
    return (
        ticket.status == Status.SOLVED
        and ticket.solved_at is not None
        and ticket.solved_at <= now - timedelta(days=autoclose_days())
    )


def check_ticket(ticket: Ticket, now: datetime | None = None) -> bool:
    """The cheap check when one ticket is read; True when something changed."""
    now = now or utcnow()
    changed = False
    if _autoclose_due(ticket, now):
        change_status(ticket, Status.CLOSED, None)
        changed = True
    if flag_breaches(ticket, now):
        changed = True
    if needs_escalation(ticket, now):
        escalate(ticket, now)
        changed = True
    return changed


_last_sweep: dict[str, datetime] = {}
SWEEP_EVERY = timedelta(minutes=1)
WORKER_SILENT_AFTER = timedelta(minutes=3)  # no `tickets.sla` slot claimed for this long
SWEEP_BATCH = 5  # tickets closed, and tickets checked, by one request's sweep


def sweep_if_due(now: datetime | None = None) -> None:
    """Run autoclose and the SLA check on queue reads, at most once a minute per process,
    and only while no worker runs the scheduled check (`tickets.sla`): a stopped worker
    never leaves a stale status on screen, and a running one keeps an agent's request from
    doing its work.

    A request does a small batch of each (SWEEP_BATCH, the most overdue first) and flags
    breaches without escalating: a backlog is worked off a batch a minute, never inside one
    page view (500 closings and 200 escalations with their emails took 0.7 s of the first
    queue page at 100,000 tickets, 4.6 s at a million). Escalating means mail, which only a
    worker delivers, and the worker's own check escalates once it runs."""
    now = now or utcnow()
    last = _last_sweep.get(current_app.instance_path)
    if last is not None and now - last < SWEEP_EVERY:
        return
    _last_sweep[current_app.instance_path] = now
    checked = jobs_services.last_slot("tickets.sla")
    if checked is not None and now - checked <= WORKER_SILENT_AFTER:
        return
    with db.writing():
        autoclose(now, limit=SWEEP_BATCH)
        check_sla(now, limit=SWEEP_BATCH, escalating=False)


def warm_up_sweep() -> None:
    """Compile the sweep's reads (gunicorn's master, before forking; portal.agent.warm_up).
    Asked for no rows (the limit is a parameter: the statements are the sweep's), they read
    nothing and change nothing. (A moment before any ticket instead made SQLite read every
    solved ticket looking for one solved before it: 0.9 s at 1,000,000 tickets.)"""
    jobs_services.last_slot("tickets.sla")
    autoclose(limit=0)
    check_sla(limit=0, escalating=False)


def due_for_check(ticket: Ticket, now: datetime) -> bool:
    """Whether `check_ticket` would change anything (so reads stay read-only otherwise)."""
    if _autoclose_due(ticket, now):
        return True
    if ticket.status not in WORKING:
        return False
    first_breach = (
        ticket.first_response_at is None
        and ticket.first_response_due_at is not None
        and ticket.first_response_due_at <= now
        and not ticket.first_response_breached
    )
    resolution_breach = (
        ticket.resolution_due_at is not None
        and ticket.resolution_due_at <= now
        and not ticket.resolution_breached
    )
    return first_breach or resolution_breach or needs_escalation(ticket, now)
