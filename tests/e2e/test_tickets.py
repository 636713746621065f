"""The customer's whole ticket journey, and a visitor's, in a real Chromium with axe audits."""

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal import write_buffer
from portal.extensions import db
from portal.tickets import suggestions
from portal.tickets.lifecycle import change_status
from portal.tickets.models import Message, Status, SuggestionEvent, Ticket
from tests.conftest import PASSWORD
from tests.tickets import conftest as ticket_fixtures

pytestmark = pytest.mark.browser
kb_article = ticket_fixtures.kb_article


@pytest.fixture
def fast_poll(app):
    app.config["TICKET_POLL_SECONDS"] = 1


def _sign_in(page, email):
    page.goto("/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Welcome back").wait_for()


def test_customer_journey(page, live_server, customer, agent, kb_article, axe, fast_poll):
    kb_article("Reset your password", "Use the forgot password link on the sign-in page.")
    _sign_in(page, customer.email)
    page.goto("/kb/")
    axe(page, "knowledge base home")
    page.get_by_label("Search the help center").fill("email never arrives")
    page.get_by_label("Search the help center").press("Enter")
    page.wait_for_url(re.compile(r"/kb/search"))
    axe(page, "knowledge base search results")
    page.locator("#search-results").get_by_role("link", name="Submit a request").click()
    page.wait_for_url(re.compile(r"/tickets/new"))
    axe(page, "new request form")
    page.get_by_label("Subject").press_sequentially("forgot password reset", delay=20)
    suggestion = page.locator("#suggestions").get_by_role("link", name="Reset your password")
    suggestion.wait_for()
    axe(page, "new request form with suggestions")
    suggestion.click()
    expect(page.get_by_role("button", name="This answered my question")).to_be_visible()
    page.get_by_label("Description").fill("The reset email never arrives.")
    page.get_by_role("button", name="Submit request").click()

    page.get_by_role("heading", name="We received your request").wait_for()
    axe(page, "confirmation page")
    ticket = db.session.scalar(select(Ticket))
    assert ticket.reference in page.content()
    write_buffer.flush(suggestions.BUFFER)  # what shown and opened suggestions buffered
    kinds = set(db.session.scalars(select(SuggestionEvent.kind)))
    assert {"impression", "open"} <= kinds and ticket.submission_key
    db.session.commit()  # end the read: the test thread's transaction takes the write lock
    page.get_by_role("link", name="View your request").click()
    page.get_by_role("heading", name=re.compile(ticket.subject)).wait_for()
    axe(page, "ticket page")

    url_before = page.url
    page.get_by_label("Your reply").fill("I checked the spam folder too.")
    page.get_by_label("Attachments (optional)").set_input_files(
        {"name": "spam-folder.png", "mimeType": "image/png", "buffer": ticket_fixtures.PNG})
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#thread")).to_contain_text("I checked the spam folder too.")
    expect(page.get_by_role("link", name="spam-folder.png")).to_be_visible()
    expect(page.get_by_text("Your reply was added.")).to_be_focused()
    assert page.url == url_before

    db.session.expire_all()
    db.session.add(Message(ticket_id=ticket.id, author=agent, author_name=agent.name,
                           from_agent=True, body="We re-sent the email; please check now."))
    db.session.add(Message(ticket_id=ticket.id, author=agent, author_name=agent.name,
                           from_agent=True, internal=True, body="SECRET note"))
    ticket = db.session.get(Ticket, ticket.id)
    change_status(ticket, Status.SOLVED, agent)
    db.session.commit()
    expect(page.locator("#thread")).to_contain_text("We re-sent the email", timeout=8000)
    expect(page.get_by_role("heading", name="How did we do?")).to_be_visible(timeout=8000)
    assert "SECRET" not in page.content() and page.url == url_before
    axe(page, "ticket page, solved")

    page.get_by_label("Good, I'm satisfied").check()
    page.get_by_label("Comment (optional)").fill("Fast help, thanks")
    page.get_by_role("button", name="Send rating").click()
    page.get_by_text("Thank you for your feedback.").wait_for()
    axe(page, "ticket page, rated")
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).csat_rating == "good"
    db.session.commit()

    page.goto("/tickets/")
    expect(page.get_by_role("link", name=ticket.reference)).to_be_visible()
    axe(page, "my requests")


def test_visitor_files_and_opens_the_emailed_link(page, browser, live_server, mailbox, axe):
    page.goto("/tickets/new")
    axe(page, "new request form, visitor")
    page.get_by_label("Your name").fill("Val Visitor")
    page.get_by_label("Subject").fill("Order never arrived")
    page.get_by_label("Description").fill("Order 7781 was due last week.")
    page.get_by_role("button", name="Submit request").click()
    page.get_by_text("We need your email to send you updates.").wait_for()
    expect(page.get_by_label("Subject")).to_have_value("Order never arrived")
    axe(page, "new request form with errors")
    page.get_by_label("Your email").fill("val@example.com")
    page.get_by_role("button", name="Submit request").click()
    page.get_by_role("heading", name="We received your request").wait_for()
    ticket = db.session.scalar(select(Ticket))
    assert ticket.requester_id is None
    db.session.commit()  # end the read: the test thread's transaction takes the write lock

    mail = mailbox.wait_for(1)[0]
    assert ticket.reference in mail["Subject"]
    link = re.search(r"http://\S+/tickets/link/\S+", mailbox.text(mail)).group(0)
    other = browser.new_context(base_url=live_server.url)
    try:
        visitor = other.new_page()
        visitor.goto(f"/tickets/{ticket.reference}")
        assert "Page not found" in visitor.content()  # without the link: a 404
        visitor.goto(link)
        visitor.get_by_role("heading", name=re.compile("Order never arrived")).wait_for()
        axe(visitor, "ticket page via emailed link")
        visitor.get_by_label("Your reply").fill("Any news?")
        visitor.get_by_role("button", name="Send reply").click()
        expect(visitor.locator("#thread")).to_contain_text("Any news?")
        visitor.goto("/tickets/find")
        axe(visitor, "find my request")
        visitor.goto("/tickets/")
        axe(visitor, "contact support, signed out")
    finally:
        other.close()
