"""From changes to outgoing events, in the transaction of the change.

`lifecycle.record_event` signals every ticket change; we keep the TicketEvent objects on the
session and, when it commits, turn them into at most one event of each type per ticket
(`ticket.updated` carries every field that changed) and a delivery row plus a job for each
endpoint that wants it. A rolled-back change (or a rolled-back savepoint: its events leave
the session) sends nothing. Other domains call `emit()` directly (surges: surge.detected).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import signals
from portal.db import utcnow

PENDING = "webhook_pending"  # session.info key: [(kind, TicketEvent | Article | (type, data))]
DELIVER_JOB = "webhooks.deliver"
UPDATE_KINDS = {"status", "priority", "type", "category", "group", "assignee", "tags", "merge"}


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def _pending(session: Session) -> list:
    return session.info.setdefault(PENDING, [])


def _on_ticket_event(ticket_event, **_extra) -> None:
    from portal.extensions import db

    _pending(db.session()).append(("ticket", ticket_event))


def _on_article_published(article, **_extra) -> None:
    from portal.extensions import db

    _pending(db.session()).append(("article", article))


def emit(event_type: str, data: dict[str, Any], session: Session | None = None) -> None:
    """Queue an event for the current transaction: sent only if it commits."""
    from portal.extensions import db

    _pending(session or db.session()).append(("emit", (event_type, data)))


def _ticket_events(session: Session, items: list) -> list[tuple[str, dict]]:
    """(type, data) for the ticket changes still in the session, per ticket. Internal notes
    become `ticket.note_added` only, which an endpoint receives only if it chose it."""
    from portal.api import representations as rep
    from portal.tickets.models import Message, Ticket

    by_ticket: dict[int, list] = {}
    for ticket_event in items:
        if ticket_event in session:  # not dropped by a savepoint rollback
            by_ticket.setdefault(ticket_event.ticket_id, []).append(ticket_event)
    out = []
    for ticket_id, ticket_events in by_ticket.items():
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            continue
        data = rep.ticket(ticket, staff=True)
        kinds = [e.kind for e in ticket_events]
        if "created" in kinds:
            out.append(("ticket.created", data))
            continue
        changes = {}
        for e in ticket_events:
            if e.kind in UPDATE_KINDS:
                first = changes.setdefault(e.kind, {"old": e.old_value, "new": e.new_value})
                first["new"] = e.new_value
        if changes:
            out.append(("ticket.updated", {**data, "changes": changes}))
        if changes.get("status", {}).get("new") == "solved":
            out.append(("ticket.solved", data))
        for kind, internal, event_type in (("reply", False, "ticket.replied"),
                                           ("note", True, "ticket.note_added")):
            if kind in kinds:
                message = session.scalar(
                    select(Message).where(Message.ticket_id == ticket_id,
                                          Message.internal.is_(internal))
                    .order_by(Message.id.desc()).limit(1))
                if message is not None:
                    out.append((event_type, {**data, "message": rep.message(message)}))
        for e in ticket_events:
            if e.kind == "breach":
                out.append(("ticket.sla_breached", {**data, "target": e.new_value}))
            elif e.kind == "stale":  # the stale-ticket alert (portal/agent/stale.py)
                out.append(("ticket.stale", {**data, "reason": e.new_value}))
            elif e.kind == "rating":
                out.append(("csat.rated", {**data, "rating": e.new_value,
                                           "comment": ticket.csat_comment}))
    return out


def _before_commit(session: Session) -> None:
    items = session.info.pop(PENDING, None)
    if not items:
        return
    from portal.api import representations as rep
    from portal.webhooks.models import WebhookEndpoint

    session.flush()
    # The endpoints first: with none enabled, no payload is built. Building one reads each
    # changed ticket's assignee and tags (and its latest message for a reply), which was
    # most of the SLA sweep's cost (5 tickets closed: 48 of 136 ms) on a portal with no
    # webhooks at all.
    endpoints = list(session.scalars(select(WebhookEndpoint)
                                     .where(WebhookEndpoint.enabled.is_(True))))
    if not endpoints:
        session.info.pop(PENDING, None)  # what the flush above signalled goes nowhere either
        return
    events = _ticket_events(session, [obj for kind, obj in items if kind == "ticket"])
    events += [("article.published", rep.article(obj))
               for kind, obj in items if kind == "article" and obj in session]
    events += [obj for kind, obj in items if kind == "emit"]
    for event_type, data in events:
        for endpoint in endpoints:
            if event_type in endpoint.event_set:
                create_delivery(session, endpoint, event_type, data)
    session.info.pop(PENDING, None)  # the flushes above may have signalled nothing new


def envelope(event_type: str, data: dict) -> str:
    return json.dumps({"type": event_type, "timestamp": utcnow().isoformat(timespec="seconds")
                       + "Z", "data": data}, default=_json_default, separators=(",", ":"))


def _json_default(value):
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds") + ("Z" if value.tzinfo is None else "")
    raise TypeError(type(value).__name__)


def create_delivery(session: Session, endpoint, event_type: str, data: dict,
                    message_id: str | None = None):
    from portal.jobs import enqueue
    from portal.webhooks.models import WebhookDelivery

    delivery = WebhookDelivery(endpoint_id=endpoint.id, message_id=message_id or new_message_id(),
                               event_type=event_type, payload=envelope(event_type, data),
                               created_at=utcnow(), next_attempt_at=utcnow())
    session.add(delivery)
    session.flush()
    enqueue(DELIVER_JOB, {"delivery_id": delivery.id}, session=session)
    return delivery


def _after_soft_rollback(session: Session, previous_transaction) -> None:
    """A rolled-back transaction sends nothing; a rolled-back savepoint drops only its own
    ticket events (they leave the session), so the outer transaction's events stay."""
    if previous_transaction.parent is None:
        session.info.pop(PENDING, None)


def _on_surge_detected(surge, **_extra) -> None:
    """A surge raised by the scan (portal/surges), in the scan's transaction."""
    from portal.mail import absolute_url

    emit("surge.detected", {
        "id": surge.id, "title": surge.title, "words": surge.words,
        "sensitivity": surge.sensitivity, "tickets": surge.member_count,
        "window_minutes": surge.window_minutes, "expected": round(surge.expected, 2),
        "detected_at": (surge.detected_at or utcnow()).isoformat() + "Z",
        "url": absolute_url("surges.detail", surge_id=surge.id),
    })


def connect() -> None:
    """Subscribe once per process (signals and session events are global)."""
    signals.ticket_event_recorded.connect(_on_ticket_event)
    signals.article_published.connect(_on_article_published)
    signals.surge_detected.connect(_on_surge_detected)
    if not sa_event.contains(Session, "before_commit", _before_commit):
        sa_event.listen(Session, "before_commit", _before_commit)
        sa_event.listen(Session, "after_soft_rollback", _after_soft_rollback)
