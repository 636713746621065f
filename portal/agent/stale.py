"""Stale-ticket alerts: tickets that sit with no activity past a threshold for their status.

Admins set a threshold per status (hours; 0 turns it off). The scheduled check flags each
ticket once per stale period: it records a "stale" event on the timeline and emails the
assignee, or the group's members when nobody is assigned. Any activity (`touch`) clears the
flag; a ticket still idle after another full period is flagged again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from portal.converters import parse_id
from portal.db import utcnow
from portal.extensions import db
from portal.mail import send_mail
from portal.tickets.lifecycle import record_event
from portal.tickets.models import Group, Setting, Status, Ticket

STALE_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)
# New tickets should be picked up within hours, open ones answered within a day, parked ones
# looked at within a week. Awaiting the customer is the customer's turn: off by default.
DEFAULT_HOURS = {Status.NEW: 2, Status.OPEN: 24, Status.PENDING: 0, Status.ON_HOLD: 7 * 24}
MAX_HOURS = 24 * 365


def _key(status: Status) -> str:
    return f"stale_hours_{status.value}"


def threshold_hours() -> dict[Status, int]:
    stored = {row.key: row.value for row in db.session.scalars(
        select(Setting).where(Setting.key.in_([_key(s) for s in STALE_STATUSES])))}
    hours = {}
    for status in STALE_STATUSES:
        value = parse_id(stored.get(_key(status), ""))
        hours[status] = DEFAULT_HOURS[status] if value is None else min(value, MAX_HOURS)
    return hours


def save_threshold_hours(hours: dict[Status, int]) -> None:
    for status in STALE_STATUSES:
        setting = db.session.get(Setting, _key(status)) or Setting(key=_key(status))
        setting.value = str(max(0, min(int(hours.get(status, 0)), MAX_HOURS)))
        db.session.add(setting)


def check_stale(now: datetime | None = None, limit: int = 500) -> int:
    """Flag tickets idle past their status's threshold; returns how many were flagged."""
    now = now or utcnow()
    flagged = 0
    for status, hours in threshold_hours().items():
        if not hours:
            continue
        cutoff = now - timedelta(hours=hours)
        tickets = db.session.scalars(
            select(Ticket)
            .where(Ticket.status == status, Ticket.last_activity_at <= cutoff,
                   or_(Ticket.stale_at.is_(None), Ticket.stale_at <= cutoff))
            .options(selectinload(Ticket.assignee),
                     selectinload(Ticket.group).selectinload(Group.members))
            .order_by(Ticket.last_activity_at)
            .limit(limit - flagged)
        ).all()
        for ticket in tickets:
            _flag(ticket, hours, now)
        flagged += len(tickets)
        if flagged >= limit:
            break
    db.session.flush()
    return flagged


def _flag(ticket: Ticket, hours: int, now: datetime) -> None:
    ticket.stale_at = now
    idle = _idle_text(hours)
    record_event(ticket, "stale", None, None, f"no activity for {idle}")
    recipients = _recipients(ticket)
    if recipients:
        from portal.mail import absolute_url

        send_mail(
            recipients, f"[{ticket.reference}] No activity for {idle}: {ticket.subject}",
            "agent_stale", ticket=ticket, thread=False, idle=idle,
            url=absolute_url("agent.ticket", ticket_id=ticket.id),
        )


def _idle_text(hours: int) -> str:
    if hours % 24 == 0 and hours >= 48:
        return f"{hours // 24} days"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _recipients(ticket: Ticket) -> list[str]:
    if ticket.assignee is not None and ticket.assignee.active:
        return [ticket.assignee.email]
    if ticket.group is not None:
        return [m.email for m in ticket.group.members if m.active]
    return []


def stale_condition():
    """Tickets flagged stale that are still waiting (for the queue's "Stale" view).

    "Flagged" is written as a range of the stale_at index, not `IS NOT NULL`: SQLite's
    statistics see a column of NULLs as one value shared by every ticket, and it then counted
    the view by scanning the table (190 ms at 1,000,000 tickets, against 0.2 ms). The status
    is an expression for the same reason: as a bare column SQLite preferred an index led by
    the status and read every open ticket's row (260 ms CPU at 1,000,000)."""
    return (Ticket.stale_at > datetime.min) & Ticket.status.concat("").in_(
        [s.value for s in STALE_STATUSES])
