"""Internal data never reaches a customer: internal notes and their attachments, internal,
draft and archived articles, agent-only properties. Every customer page, htmx partial, the poll,
suggestions, search, related articles and real emails are checked for the SECRET marker."""

from __future__ import annotations

import pytest

from portal.extensions import db

PARTIAL_HEADERS = [
    {},
    {"HX-Request": "true"},
    {"HX-Request": "true", "HX-Target": "ticket-body"},
    {"HX-Request": "true", "HX-Target": "search-results"},
    {"HX-Request": "true", "HX-Target": "instant-results"},
    {"HX-Request": "true", "HX-Boosted": "true"},
]


def customer_urls(w) -> list[str]:
    ref = w.ticket.reference
    article = w.public_article
    # Queries name words of the secret things, never the marker itself, which pages echo.
    return [
        "/", "/kb/", f"/kb/articles/{article.id}-{article.slug}",
        f"/kb/categories/{article.section.category_id}-x", f"/kb/sections/{article.section_id}-x",
        "/kb/search?q=printer", "/kb/search?q=printer+smokes",
        "/kb/search?q=runbook", "/kb/search?q=draft", "/kb/search?q=archived",
        "/kb/search/instant?q=printer",
        "/kb/search/instant?q=runb", "/kb/search?q=%22printer+smokes%22",
        "/kb/search?q=printer+NOT+answer", "/kb/search?q=printer+OR+runbook",
        # Misspellings: a "did you mean" built from internal vocabulary would name it.
        "/kb/search?q=runbok", "/kb/search?q=zqxsecre", "/kb/search/instant?q=zqxsecre",
        "/tickets/", "/tickets/?q=naughty", "/tickets/?scope=organization",
        f"/tickets/{ref}", f"/tickets/{ref}/submitted", f"/tickets/{ref}/rate",
        f"/tickets/{ref}/updates", f"/tickets/{ref}/updates?after=0&v=stale&s=new",
        "/tickets/new", "/tickets/new/suggestions?subject=printer+smokes&description=runbook",
        "/tickets/new/suggestions?subject=runbook&description=naughty+list",
        f"/tickets/new?follow_up={ref}",
        *(f"/tickets/new/suggestions/{a.id}" for a in (w.internal_article, w.draft_article,
                                                      w.archived_article)),
        *(f"/kb/articles/{a.id}-x" for a in (w.internal_article, w.draft_article,
                                            w.archived_article)),
        "/account",
    ]


@pytest.mark.parametrize("role", ["owner", "colleague", "visitor"])
def test_no_customer_page_or_partial_shows_internal_data(app, world, role):
    client = world.client_for(getattr(world, role, None))
    problems = []
    for url in customer_urls(world):
        for headers in PARTIAL_HEADERS:
            response = client.get(url, headers=headers, follow_redirects=True)
            text = response.get_data(as_text=True)
            response.close()
            if response.status_code >= 500:
                problems.append(f"{url} {headers}: {response.status_code}")
            if world.secret.lower() in text.lower():
                problems.append(f"{url} {headers}: shows internal data")
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_owner_really_sees_the_public_parts(app, world):
    """The leak test above is only worth something if the pages show the public data."""
    client = world.client_for(world.owner)
    page = client.get(f"/tickets/{world.ticket.reference}").get_data(as_text=True)
    assert "Please try turning it off." in page and "public-invoice.pdf" in page
    found = client.get("/kb/search?q=printer").get_data(as_text=True)
    assert "Printer smokes public answer" in found
    staff = world.client_for(world.agent).get(f"/agent/tickets/{world.ticket.id}")
    assert world.secret in staff.get_data(as_text=True)


def test_customer_emails_never_carry_internal_notes(app, world, mailbox):
    """Real SMTP: public replies, solved, merge and 'find my request' emails."""
    from portal.agent import services as agent_services
    from portal.tickets import notify

    agent = world.client_for(world.agent)
    tid = world.ticket.id
    agent.post(f"/agent/tickets/{tid}/reply", data={"body": f"{world.secret} second note",
                                                    "internal": "y"})
    agent.post(f"/agent/tickets/{tid}/reply", data={"body": "Public answer", "status_after":
                                                    "solved"})
    world.client_for(world.owner).post("/tickets/find", data={"email": world.owner.email})
    other = world.private_ticket
    agent_services.merge(other, world.ticket, world.agent)
    db.session.commit()
    notify.notify_merged(other, world.ticket)
    messages = mailbox.wait_for(3)
    assert any("Public answer" in mailbox.text(m) for m in messages)
    for message in messages:
        body = message.as_string()
        assert world.secret.lower() not in body.lower(), message["Subject"]
