"""Agent workspace fixtures: tickets made the way the portal makes them (events, SLA, routing)."""

from __future__ import annotations

from datetime import datetime

import pytest

from portal.db import utcnow
from portal.extensions import db
from portal.tickets import sla
from portal.tickets.lifecycle import record_event
from portal.tickets.models import Message, Priority, Ticket
from portal.tickets.routing import route_new_ticket


@pytest.fixture
def make_ticket(app):
    """make_ticket(requester, subject=..., body=..., priority=..., created_at=..., **fields)."""

    def factory(requester=None, subject="Cannot sign in", body="It says my password is wrong.",
                priority=Priority.NORMAL, created_at: datetime | None = None, **fields):
        created_at = created_at or utcnow()
        ticket = Ticket(
            subject=subject,
            priority=priority,
            requester_id=requester.id if requester else None,
            requester_name=requester.name if requester else "Visitor Val",
            requester_email=requester.email if requester else "val@example.com",
            created_at=created_at,
            updated_at=created_at,
            last_activity_at=created_at,
            **fields,
        )
        db.session.add(ticket)
        db.session.flush()
        db.session.add(Message(ticket=ticket, author_id=ticket.requester_id,
                               author_name=ticket.requester_name, body=body,
                               created_at=created_at))
        event = record_event(ticket, "created", requester)
        event.created_at = created_at
        sla.apply_targets(ticket, created_at)
        route_new_ticket(ticket)
        db.session.commit()
        return ticket

    return factory
