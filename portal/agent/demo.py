"""Demo support setup: groups with routing, SLA policies with business hours, canned replies."""

from __future__ import annotations

from datetime import time

from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.tickets import sla
from portal.tickets.models import CannedReply, Group, Priority, SlaPolicy, TicketCategory

# group name -> (auto-assign, category names it receives)
GROUPS = {
    "Customer success": (True, ["Account & sign-in", "Feature request"]),
    "Billing": (False, ["Billing & invoices"]),
    "Technical support": (True, ["Technical issue"]),
}

CANNED_REPLIES = {
    "Greeting": "Hi {{requester.first_name}},\n\nThanks for contacting us about "
    "{{ticket.reference}}. ",
    "Need more details": "Hi {{requester.first_name}},\n\nCould you send us the steps that lead "
    "to the problem, what you expected to happen, and a screenshot if you have one?\n\n"
    "Best,\n{{agent.name}}",
    "Solved, closing": "Hi {{requester.first_name}},\n\nWe believe this is solved now. If "
    "anything is still not right, just reply and the ticket reopens.\n\nBest,\n{{agent.name}}",
    "Password reset steps": "Hi {{requester.first_name}},\n\nPlease use “Forgot your password?” "
    "on the sign-in page; the link in the email works for one hour.\n\n{{agent.name}}",
}


def seed_support(agent: User) -> None:
    """Idempotent: adds only what is missing."""
    categories = {c.name: c for c in db.session.scalars(select(TicketCategory))}
    existing = {g.name for g in db.session.scalars(select(Group))}
    for name, (auto_assign, category_names) in GROUPS.items():
        if name in existing:
            continue
        group = Group(name=name, auto_assign=auto_assign, members=[agent])
        db.session.add(group)
        for category_name in category_names:
            if category_name in categories and categories[category_name].group is None:
                categories[category_name].group = group
    policies = {p.priority for p in db.session.scalars(select(SlaPolicy))}
    for priority, (first, resolution) in sla.DEFAULT_TARGETS_MINUTES.items():
        if priority not in policies:
            db.session.add(SlaPolicy(priority=priority, first_response_minutes=first,
                                     resolution_minutes=resolution,
                                     business_hours=priority in (Priority.LOW, Priority.NORMAL)))
    sla.save_business_hours(sla.BusinessHours(frozenset(range(5)), time(9), time(17), "UTC"))
    titles = set(db.session.scalars(select(CannedReply.title)))
    for title, body in CANNED_REPLIES.items():
        if title not in titles:
            db.session.add(CannedReply(title=title, body=body))
    db.session.flush()
