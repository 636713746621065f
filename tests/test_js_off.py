"""Every form works as a plain HTML form post, JavaScript off and CSRF on: the token and the
one-time keys come from the page, exactly as a browser without htmx would send them."""

from __future__ import annotations

import pytest
from nojs import submit
from sqlalchemy import select

from portal.extensions import db
from portal.kb.models import ArticleVote
from portal.tickets.models import Message, Status, Ticket

pytestmark = pytest.mark.parametrize("app", [{"WTF_CSRF_ENABLED": True}], indirect=True)


def fresh(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def test_customer_files_replies_solves_and_rates(app, world):
    client = world.client_for(world.owner)
    response = submit(client, "/tickets/new", "/tickets/new", {
        "subject": "Scanner jams", "description": "Every page jams on the second sheet.",
    })
    assert response.status_code == 200
    ticket = db.session.scalar(select(Ticket).where(Ticket.subject == "Scanner jams"))
    assert ticket is not None and ticket.requester_id == world.owner.id

    page = f"/tickets/{ticket.reference}"
    response = submit(client, page, "/reply", {"body": "Also the lid squeaks."})
    assert "Your reply was added." in response.get_data(as_text=True)
    assert db.session.scalar(select(Message).where(Message.body == "Also the lid squeaks."))

    submit(client, page, "/solve")
    assert fresh(ticket).status == Status.SOLVED
    submit(client, page, "/rate", {"rating": "good", "comment": "Quick, thanks"})
    assert fresh(ticket).csat_rating == "good"


def test_check_for_answers_keeps_what_was_typed(app, world):
    client = world.client_for(world.owner)
    response = submit(client, "/tickets/new", "/tickets/new", {
        "subject": "Printer smokes", "description": "What do I do?", "check": "1",
    })
    text = response.get_data(as_text=True)
    assert "Printer smokes public answer" in text and "What do I do?" in text


def test_visitor_votes_on_an_article(app, world):
    client = world.client_for(None)
    article = world.public_article
    url = f"/kb/articles/{article.id}-{article.slug}"
    response = submit(client, url, "/vote", button=("helpful", "yes"))
    assert response.status_code == 200
    assert db.session.scalar(select(ArticleVote).where(ArticleVote.article_id == article.id))


def test_agent_replies_notes_changes_status_and_bulk_updates(app, world):
    client = world.client_for(world.agent)
    page = f"/agent/tickets/{world.ticket.id}"
    submit(client, page, "/reply", {"body": "A plain-form note", "internal": "y"})
    note = db.session.scalar(select(Message).where(Message.body == "A plain-form note"))
    assert note is not None and note.internal
    submit(client, page, "/reply", {"body": "A plain-form reply", "status_after": "pending"})
    reply = db.session.scalar(select(Message).where(Message.body == "A plain-form reply"))
    assert reply is not None and not reply.internal
    assert fresh(world.ticket).status == Status.PENDING
    submit(client, page, "/properties", {"status": "open", "priority": "low"})
    assert fresh(world.ticket).status == Status.OPEN

    response = submit(client, "/agent/", "/agent/bulk", {
        "ticket": [str(world.private_ticket.id)], "status": "pending",
    })
    assert "Updated 1 ticket" in response.get_data(as_text=True)
    assert fresh(world.private_ticket).status == Status.PENDING


def test_agent_edits_an_article(app, world):
    client = world.client_for(world.agent)
    article = world.public_article
    submit(client, f"/agent/kb/{article.id}/edit", f"/agent/kb/{article.id}/edit",
           {"title": "Printer smokes: the definitive answer"})
    assert fresh(article).title == "Printer smokes: the definitive answer"
