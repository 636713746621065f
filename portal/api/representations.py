"""One JSON shape per resource, used by the API and by webhook payloads alike.

Customers get a narrower view of a ticket: no tags, group, assignee or SLA fields (those are
the team's working data), and never internal notes or agents-only timeline events.
"""

from __future__ import annotations

from datetime import datetime

from portal.auth.models import User
from portal.kb.models import Article
from portal.mail import absolute_url
from portal.tickets.models import Message, Ticket, TicketEvent


def iso(moment: datetime | None) -> str | None:
    """Naive UTC from the database as ISO 8601 with a Z."""
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


def person(user: User | None, name: str | None = None, email: str | None = None) -> dict | None:
    if user is None and name is None:
        return None
    return {"id": user.id if user else None, "name": user.name if user else name,
            "email": user.email if user else (email or "")}


def ticket(t: Ticket, *, staff: bool) -> dict:
    data = {
        "id": t.id, "reference": t.reference, "subject": t.subject, "status": t.status.value,
        "type": t.type.value, "channel": t.channel.value,
        "requester": {"id": t.requester_id, "name": t.requester_name, "email": t.requester_email},
        "created_at": iso(t.created_at), "updated_at": iso(t.updated_at),
        "solved_at": iso(t.solved_at),
        "csat_rating": t.csat_rating,
    }
    if staff:
        data.update(
            priority=t.priority.value,
            assignee=person(t.assignee),
            group_id=t.group_id, organization_id=t.organization_id,
            tags=[tag.name for tag in t.tags],
            first_response_due_at=iso(t.first_response_due_at),
            resolution_due_at=iso(t.resolution_due_at),
            url=absolute_url("agent.ticket", ticket_id=t.id),
        )
    else:
        data["url"] = absolute_url("tickets.show", reference=t.reference)
    return data


def message(m: Message) -> dict:
    return {
        "id": m.id, "ticket_id": m.ticket_id,
        "author": person(m.author, m.author_name), "from_agent": m.from_agent,
        "internal": m.internal, "body": m.body, "channel": m.channel.value,
        "created_at": iso(m.created_at),
        "attachments": [{"id": a.id, "filename": a.filename, "content_type": a.content_type,
                         "size": a.size} for a in m.attachments],
    }


def event(e: TicketEvent) -> dict:
    return {"id": e.id, "kind": e.kind, "actor": person(e.actor), "old_value": e.old_value,
            "new_value": e.new_value, "created_at": iso(e.created_at)}


def user(u: User) -> dict:
    return {"id": u.id, "name": u.name, "email": u.email, "role": u.role.value,
            "active": u.active, "organization_id": u.organization_id,
            "created_at": iso(u.created_at)}


def article(a: Article) -> dict:
    return {
        "id": a.id, "title": a.title, "slug": a.slug, "body": a.body, "section_id": a.section_id,
        "labels": [label.strip() for label in a.labels.split(",") if label.strip()],
        "visibility": a.visibility.value, "status": a.status.value, "promoted": a.promoted,
        "version": a.version, "created_at": iso(a.created_at), "updated_at": iso(a.updated_at),
        "published_at": iso(a.published_at),
        "url": absolute_url("kb.article", article_id=a.id, slug=a.slug),
    }
