"""The agent's day in a real browser: queue, filters, bulk action, ticket page with a canned
reply inserted by htmx, a public reply, reports; axe on every page visited."""

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.tickets import sla
from portal.tickets.lifecycle import record_event
from portal.tickets.models import CannedReply, Message, Priority, Status, Ticket

pytestmark = pytest.mark.browser


def file_ticket(customer, subject, priority=Priority.NORMAL):
    ticket = Ticket(subject=subject, priority=priority, requester_id=customer.id,
                    requester_name=customer.name, requester_email=customer.email)
    db.session.add(ticket)
    db.session.flush()
    db.session.add(Message(ticket=ticket, author_id=customer.id, author_name=customer.name,
                           body=f"Details about {subject.lower()}."))
    record_event(ticket, "created", customer)
    sla.apply_targets(ticket, ticket.created_at)
    db.session.commit()
    return ticket


def sign_in(page, user):
    page.goto("/auth/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Ticket queue").wait_for()


def test_agent_works_the_queue_and_a_ticket(page, live_server, agent, customer, axe):
    printer = file_ticket(customer, "Printer on fire", Priority.URGENT)
    file_ticket(customer, "Invoice is wrong")
    db.session.add(CannedReply(title="Greeting", body="Hi {{requester.first_name}},"))
    db.session.commit()

    sign_in(page, agent)
    axe(page, "queue")
    page.get_by_role("link", name="Unassigned").click()
    page.wait_for_url("**/agent/?view=unassigned")
    page.get_by_text("Printer on fire").wait_for()

    # Filters open on demand; filter by priority: htmx swaps the results in place.
    assert not page.get_by_label("Priority", exact=True).is_visible()
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("Priority", exact=True).select_option("urgent")
    page.wait_for_function(
        "() => !document.querySelector('#queue-results').textContent.includes('Invoice is wrong')")
    assert page.get_by_text("Printer on fire").is_visible()
    axe(page, "filtered queue")

    # Bulk: ticking a ticket brings up the bar; set the priority of every ticket listed.
    bar = page.locator(".bulk-bar")
    assert bar.evaluate("e => getComputedStyle(e).position") == "static"
    page.get_by_label(f"Select {printer.reference}").check()
    assert bar.evaluate("e => getComputedStyle(e).position") == "sticky"
    page.get_by_text("Bulk update").click()
    page.locator("#priority").select_option("high")
    page.get_by_role("button", name="Apply to all 1 on this page").click()
    page.get_by_text("Updated 1 ticket.").wait_for()
    db.session.expire_all()
    assert printer.priority == Priority.HIGH
    db.session.rollback()  # end the test's (write-locking) transaction before the app writes

    page.get_by_role("link", name="Unassigned").click()
    page.wait_for_url("**/agent/?view=unassigned")
    page.get_by_role("link", name="Printer on fire").click()
    page.get_by_role("heading", name="Conversation").wait_for()
    axe(page, "agent ticket page")

    # Canned reply inserted into the editor by htmx, placeholders filled.
    page.get_by_label("Canned reply").select_option(label="Greeting")
    page.get_by_role("button", name="Insert canned reply").click()
    reply_box = page.get_by_label("Reply", exact=True)
    page.wait_for_function(
        "() => document.querySelector('#reply-editor textarea').value.includes('Hi Casey,')")
    reply_box.fill(reply_box.input_value() + "\nWe are on it.")
    page.get_by_label("Then set status").select_option("pending")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("Reply sent.").wait_for()
    axe(page, "ticket after reply")
    db.session.expire_all()
    assert printer.status == Status.PENDING and printer.first_response_at is not None
    last = db.session.scalars(select(Message).where(Message.ticket_id == printer.id)
                              .order_by(Message.id.desc())).first()
    assert last.body.startswith("Hi Casey,") and "We are on it." in last.body
    db.session.rollback()

    page.get_by_role("link", name="Turn this into an article").click()
    page.get_by_role("heading", name=f"Turn {printer.reference} into an article").wait_for()
    axe(page, "turn into article")

    page.goto("/agent/reports")
    page.get_by_role("heading", name="Support reports").wait_for()
    assert page.locator("figure.chart svg[role=img]").count() == 2
    axe(page, "reports")


def test_admin_support_settings_pages_are_accessible(page, live_server, admin, axe):
    sign_in(page, admin)
    for url, heading in [("/admin/support/agents", "Agents"), ("/admin/support/groups", "Groups"),
                         ("/admin/support/groups/new", "New group"),
                         ("/admin/support/categories", "Ticket categories and routing"),
                         ("/admin/support/sla", "SLA targets per priority"),
                         ("/admin/support/canned", "Canned replies"),
                         ("/admin/support/canned/new", "New canned reply")]:
        page.goto(url)
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        axe(page, url)


def test_merge_into_another_customers_ticket_asks_first(page, live_server, agent, customer,
                                                        make_user, axe):
    olga = make_user("customer", email="olga@example.com", name="Olga")
    target = file_ticket(customer, "Printer broken")
    duplicate = file_ticket(olga, "Printer broken too")
    sign_in(page, agent)
    page.goto(f"/agent/tickets/{duplicate.id}")
    page.get_by_text("Merge into another ticket…").click()
    page.get_by_label("Merge into ticket").fill(target.reference)
    page.get_by_role("button", name="Merge", exact=True).click()
    page.get_by_text(f"{target.reference} has a different requester").wait_for()
    assert page.get_by_label("No: tell them", exact=False).is_checked()
    axe(page, "merge confirmation")
    page.get_by_role("button", name=f"Confirm merge into {target.reference}").click()
    page.get_by_text(f"{duplicate.reference} was merged into {target.reference}.").wait_for()
    db.session.expire_all()
    assert db.session.get(Ticket, duplicate.id).merged_into_id == target.id
    assert not db.session.get(Ticket, target.id).ccs


def test_saving_properties_keeps_the_reply_being_written(page, live_server, agent, customer,
                                                          axe):
    ticket = file_ticket(customer, "Scanner jams")
    sign_in(page, agent)
    page.goto(f"/agent/tickets/{ticket.id}")
    page.get_by_label("Reply", exact=True).fill("Half-written answer")
    page.locator("#ticket-properties").get_by_label("Priority").select_option("high")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved: priority.").wait_for()
    assert page.get_by_label("Reply", exact=True).input_value() == "Half-written answer"
    assert page.locator("#ticket-head").get_by_text("High").is_visible()
    axe(page, "ticket page after saving properties")
