"""Surge fixtures: tickets from a small hand-written set of support messages (tickets.csv:
15 topics, 40 messages about a broken checkout), filed the way the portal files them and
embedded by the real MiniLM encoder."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from portal.db import utcnow
from portal.extensions import db
from portal.surges import services
from portal.tickets import services as ticket_services
from portal.tickets.models import TicketType

FIXTURE = Path(__file__).with_name("tickets.csv")
SEMANTIC = pytest.mark.parametrize("app", [{"SEMANTIC_SEARCH": True}], indirect=True)


def fixture_rows() -> list[dict]:
    with FIXTURE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def file_ticket(app):
    """file_ticket(subject, text, created_at, email=..., name=..., organization=None)."""
    counter = {"n": 0}

    def factory(subject: str, text: str, created_at: datetime, email: str | None = None,
                organization=None, name: str | None = None, **fields):
        counter["n"] += 1
        ticket, _ = ticket_services.create_ticket(ticket_services.NewTicket(
            subject=subject, description=text, type=TicketType.QUESTION,
            name=name or f"Requester {counter['n']}",
            email=email or f"r{counter['n']}@example.com"))
        ticket.created_at = ticket.updated_at = ticket.last_activity_at = created_at
        ticket.messages[0].created_at = created_at
        if organization is not None:
            ticket.organization_id = organization.id
        for key, value in fields.items():
            setattr(ticket, key, value)
        db.session.flush()
        return ticket

    return factory


@pytest.fixture
def stream(file_ticket):
    """A quiet week of mixed topics, then a spike: returns (now, spike tickets).

    Six tickets of each other topic spread over the last six and a half days (a young
    installation: the cold-start rule applies), then `spike` checkout tickets in 40 minutes.
    """

    def build(spike: int = 14, now: datetime | None = None, groups=None):
        now = now or utcnow().replace(microsecond=0)
        rows = fixture_rows()
        background = [r for r in rows if r["category"] != "checkout_502"]
        by_topic: dict[str, list[dict]] = {}
        for row in background:
            by_topic.setdefault(row["category"], []).append(row)
        quiet = [row for rows_ in by_topic.values() for row in rows_[:6]]
        span = timedelta(days=6, hours=12)
        for i, row in enumerate(quiet):
            at = now - span + span * (i / len(quiet))
            file_ticket(row["subject"], row["text"], at - timedelta(hours=1))
        checkout = [r for r in rows if r["category"] == "checkout_502"][:spike]
        tickets = []
        for i, row in enumerate(checkout):
            at = now - timedelta(minutes=40) + timedelta(minutes=40 * i / max(len(checkout), 1))
            tickets.append(file_ticket(row["subject"], row["text"], at, **(groups or {})))
        db.session.commit()
        while services.embed_pending(limit=200):
            pass
        db.session.commit()
        return now, tickets

    return build
