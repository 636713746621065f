"""Ticket fixtures: categories, tickets made through the real services, upload samples."""

from __future__ import annotations

import io

import pytest

from portal.extensions import db
from portal.tickets import services
from portal.tickets.access import Viewer
from portal.tickets.models import Message, TicketCategory, TicketType

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def upload(data: bytes, name: str):
    return (io.BytesIO(data), name)


@pytest.fixture
def category(app):
    cat = TicketCategory(name="Billing", position=1)
    db.session.add(cat)
    db.session.commit()
    return cat


@pytest.fixture
def make_ticket(app):
    """make_ticket(requester, subject=..., body=...) through the real create_ticket service."""

    def factory(requester=None, subject="Printer is on fire", body="It smokes.", *,
                name="Val Visitor", email="val@example.com", ccs=(), **fields):
        ticket, _ = services.create_ticket(services.NewTicket(
            subject=subject, description=body, type=TicketType.INCIDENT, name=name,
            email=email, requester=requester, ccs=list(ccs),
        ))
        for key, value in fields.items():
            setattr(ticket, key, value)
        db.session.commit()
        return ticket

    return factory


@pytest.fixture
def agent_reply(app):
    """Add an agent's message straight through the database (the agent UI is elsewhere)."""

    def add(ticket, agent, body="Have you tried turning it off and on?", internal=False):
        message = Message(ticket=ticket, author=agent, author_name=agent.name, from_agent=True,
                          internal=internal, body=body)
        db.session.add(message)
        from portal.tickets.lifecycle import touch

        touch(ticket)
        db.session.commit()
        return message

    return add


def as_viewer(user) -> Viewer:
    return Viewer(user, user.email, user.name)


@pytest.fixture
def kb_article(app, agent, run_jobs):
    """kb_article(title, body, visibility=...) -> a published, indexed KB article."""
    from portal.kb.models import ArticleStatus, Visibility
    from portal.kb.services import ArticleInput, create_article, create_category, create_section

    section = create_section(create_category("Account"), "Passwords")
    db.session.commit()

    def factory(title, body="Steps to follow.", *, visibility=Visibility.PUBLIC,
                status=ArticleStatus.PUBLISHED):
        article = create_article(
            ArticleInput(title=title, body=body, section_id=section.id, labels="",
                         visibility=visibility),
            agent, status=status,
        )
        db.session.commit()
        run_jobs()  # a worker updates the search index
        return article

    return factory
