"""SLA clocks: due times per priority, paused while the ticket awaits the customer.

The agent-workspace work owns the policies (calendar or business hours); this module keeps the
due times on the ticket right as it moves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.tickets.models import Priority, SlaPolicy, Ticket

DEFAULT_TARGETS_MINUTES = {  # first response, resolution
    Priority.URGENT: (60, 4 * 60),
    Priority.HIGH: (4 * 60, 24 * 60),
    Priority.NORMAL: (8 * 60, 72 * 60),
    Priority.LOW: (24 * 60, 120 * 60),
}


def targets(priority: Priority) -> tuple[int, int]:
    policy = db.session.scalar(select(SlaPolicy).where(SlaPolicy.priority == priority))
    if policy is None:
        return DEFAULT_TARGETS_MINUTES[priority]
    return policy.first_response_minutes, policy.resolution_minutes


def apply_targets(ticket: Ticket, start: datetime) -> None:
    """Set due times from the ticket's priority, counted from `start`."""
    first, resolution = targets(ticket.priority)
    if ticket.first_response_at is None:
        ticket.first_response_due_at = start + timedelta(minutes=first)
    ticket.resolution_due_at = start + timedelta(minutes=resolution)


def pause(ticket: Ticket, now: datetime) -> None:
    if ticket.sla_paused_at is None:
        ticket.sla_paused_at = now


def resume(ticket: Ticket, now: datetime) -> None:
    """Push the due times back by however long the clock was paused."""
    if ticket.sla_paused_at is None:
        return
    paused = now - ticket.sla_paused_at
    if ticket.resolution_due_at is not None:
        ticket.resolution_due_at += paused
    if ticket.first_response_due_at is not None and ticket.first_response_at is None:
        ticket.first_response_due_at += paused
    ticket.sla_paused_at = None
