"""Routing: a new ticket goes to its category's group, and optionally to the least-loaded
active agent of that group (round-robin among equals, by who was assigned longest ago)."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.auth.models import User
from portal.extensions import db
from portal.tickets.lifecycle import record_event
from portal.tickets.models import Group, Status, Ticket, group_members

OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)


def least_loaded_agent(group: Group) -> User | None:
    """The active member with the fewest open tickets; ties go to the longest-idle one."""
    open_load = (
        select(func.count(Ticket.id))
        .where(Ticket.assignee_id == User.id, Ticket.status.in_(OPEN_STATUSES))
        .correlate(User)
        .scalar_subquery()
    )
    last_assigned = (
        select(func.max(Ticket.created_at))
        .where(Ticket.assignee_id == User.id)
        .correlate(User)
        .scalar_subquery()
    )
    query = (
        select(User)
        .join(group_members, group_members.c.user_id == User.id)
        .where(group_members.c.group_id == group.id, User.active.is_(True))
        .order_by(open_load, last_assigned.asc().nulls_first(), User.id)
        .limit(1)
    )
    return db.session.scalar(query)


def route_new_ticket(ticket: Ticket) -> None:
    """Set group (and assignee, when the group auto-assigns) from the ticket's category."""
    if ticket.category is None or ticket.category.group is None or ticket.group_id:
        return
    group = ticket.category.group
    ticket.group = group
    record_event(ticket, "group", None, None, group.name)
    if group.auto_assign and ticket.assignee_id is None:
        agent = least_loaded_agent(group)
        if agent is not None:
            ticket.assignee = agent
            record_event(ticket, "assignee", None, None, agent.name)
