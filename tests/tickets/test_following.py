from sqlalchemy import select

from portal.auth.models import Organization
from portal.extensions import db
from portal.tickets.models import Message, Status, TicketEvent
from tests.tickets.conftest import EXE, PDF, PNG, upload

HTMX = {"HX-Request": "true"}


def test_someone_elses_ticket_is_a_404_everywhere(customer_client, make_user, make_ticket,
                                                   agent_reply, agent):
    other = make_user("customer", email="other@example.com")
    ticket = make_ticket(other, subject="Private matter")
    message = agent_reply(ticket, agent)
    ref = ticket.reference
    urls = [f"/tickets/{ref}", f"/tickets/{ref}/updates", f"/tickets/{ref}/rate",
            f"/tickets/{ref}/submitted", f"/tickets/new?follow_up={ref}"]
    for url in urls:
        assert customer_client.get(url).status_code == 404, url
    for url in (f"/tickets/{ref}/reply", f"/tickets/{ref}/solve", f"/tickets/{ref}/rate"):
        assert customer_client.post(url, data={"body": "hi", "rating": "good"}).status_code == 404
    assert customer_client.get("/tickets/TKT-999999").status_code == 404
    assert customer_client.get("/tickets/nonsense").status_code == 404
    assert b"Private matter" not in customer_client.get("/tickets/").data
    assert db.session.get(Message, message.id).ticket.status == Status.NEW


def test_thread_shows_public_messages_oldest_first_never_internal_notes(
        customer_client, customer, make_ticket, agent_reply, agent):
    ticket = make_ticket(customer, body="First words")
    agent_reply(ticket, agent, body="SECRET internal note", internal=True)
    agent_reply(ticket, agent, body="Public answer")
    ticket.assignee = agent
    db.session.commit()
    page = customer_client.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
    assert page.index("First words") < page.index("Public answer")
    assert "SECRET" not in page and agent.name in page and "Received" in page
    poll = customer_client.get(f"/tickets/{ticket.reference}/updates?after=0&v=old&s=new",
                               headers=HTMX)
    assert poll.status_code == 200 and b"Public answer" in poll.data and b"SECRET" not in poll.data


def test_poll_answers_204_when_nothing_changed_and_new_messages_otherwise(
        customer_client, customer, make_ticket, agent_reply, agent):
    ticket = make_ticket(customer)
    page = customer_client.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
    poll_url = page.split('id="poller" hx-get="')[1].split('"')[0].replace("&amp;", "&")
    assert customer_client.get(poll_url, headers=HTMX).status_code == 204
    agent_reply(ticket, agent, body="We are on it")
    response = customer_client.get(poll_url, headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "We are on it" in html
    assert "It smokes." not in html  # only what is new
    fresh_url = html.split('id="poller" hx-get="')[1].split('"')[0].replace("&amp;", "&")
    assert customer_client.get(fresh_url, headers=HTMX).status_code == 204


def test_reply_moves_pending_back_to_open_and_emails_ccs(customer_client, customer, make_ticket,
                                                          mailbox):
    ticket = make_ticket(customer, ccs=["cc@example.com"], status=Status.PENDING)
    mailbox.messages.clear()
    response = customer_client.post(f"/tickets/{ticket.reference}/reply", data={
        "body": "Here is the log", "form_key": "r1",
        "attachments": [upload(PDF, "log.pdf")]}, content_type="multipart/form-data")
    assert response.status_code == 303
    assert db.session.get(type(ticket), ticket.id).status == Status.OPEN
    mail = mailbox.wait_for(1)[0]
    assert mail["X-Envelope-To"] == "cc@example.com"  # not the author themself
    assert mail["Subject"] == f"[{ticket.reference}] Re: {ticket.subject}"
    assert "Here is the log" in mailbox.text(mail)
    again = customer_client.post(f"/tickets/{ticket.reference}/reply",
                                 data={"body": "Here is the log", "form_key": "r1"})
    assert again.status_code == 303
    bodies = db.session.scalars(select(Message.body).where(Message.ticket_id == ticket.id)).all()
    assert bodies.count("Here is the log") == 1


def test_htmx_reply_returns_the_thread_and_errors_keep_text(customer_client, customer,
                                                            make_ticket):
    ticket = make_ticket(customer)
    headers = {"HX-Request": "true", "HX-Target": "ticket-body"}
    ok = customer_client.post(f"/tickets/{ticket.reference}/reply",
                              data={"body": "Via htmx", "form_key": "h1"}, headers=headers)
    assert ok.status_code == 200 and b'id="ticket-body"' in ok.data and b"<html" not in ok.data
    assert b"Via htmx" in ok.data and b"Your reply was added." in ok.data
    bad = customer_client.post(f"/tickets/{ticket.reference}/reply", data={
        "body": "Keep me", "form_key": "h2", "attachments": [upload(EXE, "setup.exe")]},
        headers=headers, content_type="multipart/form-data")
    assert b"not a file type we accept" in bad.data and b"Keep me" in bad.data


def test_solved_reopens_on_reply_closed_refuses_and_offers_follow_up(
        customer_client, customer, make_ticket):
    ticket = make_ticket(customer, status=Status.SOLVED)
    customer_client.post(f"/tickets/{ticket.reference}/reply", data={"body": "Not fixed"})
    assert ticket.status == Status.OPEN and ticket.reopen_count == 1
    ticket.status = Status.CLOSED
    db.session.commit()
    refused = customer_client.post(f"/tickets/{ticket.reference}/reply",
                                   data={"body": "Hello?"})
    assert refused.status_code == 422 and b"closed and takes no more replies" in refused.data
    assert b"Hello?" in refused.data
    page = customer_client.get(f"/tickets/{ticket.reference}").data
    assert f"/tickets/new?follow_up={ticket.reference}".encode() in page
    form = customer_client.get(f"/tickets/new?follow_up={ticket.reference}").data
    assert f"Follow-up to {ticket.reference}".encode() in form
    created = customer_client.post("/tickets/new", data={
        "subject": "Follow-up", "description": "Still broken", "type": "question",
        "follow_up_of": ticket.reference, "form_key": "fu"})
    assert created.status_code == 303
    new_ref = created.headers["Location"].split("/")[-2]
    assert ticket.reference.encode() in customer_client.get(f"/tickets/{new_ref}").data


def test_mark_solved_then_rate_and_change_until_closed(customer_client, customer, make_ticket):
    ticket = make_ticket(customer)
    early = customer_client.post(f"/tickets/{ticket.reference}/rate", data={"rating": "good"})
    assert early.status_code == 422 and b"once it is solved" in early.data
    customer_client.post(f"/tickets/{ticket.reference}/solve")
    assert ticket.status == Status.SOLVED
    assert b"How did we do?" in customer_client.get(f"/tickets/{ticket.reference}").data
    customer_client.post(f"/tickets/{ticket.reference}/rate",
                         data={"rating": "bad", "comment": "Slow"})
    assert (ticket.csat_rating, ticket.csat_comment) == ("bad", "Slow") and ticket.csat_at
    customer_client.post(f"/tickets/{ticket.reference}/rate", data={"rating": "good"})
    assert ticket.csat_rating == "good"
    kinds = db.session.scalars(select(TicketEvent.new_value).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "rating")).all()
    assert kinds == ["bad", "good"]
    ticket.status = Status.CLOSED
    db.session.commit()
    late = customer_client.post(f"/tickets/{ticket.reference}/rate", data={"rating": "bad"})
    assert b"can no longer change" in late.data and ticket.csat_rating == "good"


def test_downloads_are_attachments_for_allowed_people_only(client, auth, customer, make_user,
                                                            make_ticket):
    ticket = make_ticket(customer)
    auth.login(customer.email)
    client.post(f"/tickets/{ticket.reference}/reply", data={
        "body": "pic", "attachments": [upload(PNG, "../../etc/pa<ss>wd.png")]},
        content_type="multipart/form-data")
    page = client.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
    url = page.split('class="attachment-list"')[1].split('href="')[1].split('"')[0]
    with client.get(url) as response:
        assert response.status_code == 200 and response.data == PNG
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "passwd.png" in response.headers["Content-Disposition"]
    assert "/" not in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    auth.logout()
    make_user("customer", email="eve@example.com")
    auth.login("eve@example.com")
    assert client.get(url).status_code == 404


def test_my_requests_filters_search_and_organisation_tab(client, auth, make_user, make_ticket):
    org = Organization(name="Acme", domain="acme.example.com", shares_tickets=True)
    db.session.add(org)
    db.session.commit()
    me = make_user("customer", email="me@example.com", organization=org)
    colleague = make_user("customer", email="col@example.com", organization=org)
    make_ticket(me, subject="Mine open")
    make_ticket(me, subject="Mine solved", status=Status.SOLVED)
    make_ticket(me, subject="Mine waiting", status=Status.PENDING)
    make_ticket(colleague, subject="Colleague issue")
    auth.login(me.email)
    mine = client.get("/tickets/").get_data(as_text=True)
    assert "Mine open" in mine and "Colleague issue" not in mine
    assert client.get("/tickets/?status=solved").get_data(as_text=True).count("Mine ") == 1
    waiting = client.get("/tickets/?status=awaiting").get_data(as_text=True)
    assert "Mine waiting" in waiting and "Mine open" not in waiting
    assert "Mine solved" not in client.get("/tickets/?q=open").get_data(as_text=True)
    shared = client.get("/tickets/?scope=organization").get_data(as_text=True)
    assert "Colleague issue" in shared and "Acme" in shared
    org.shares_tickets = False
    db.session.commit()
    assert "Colleague issue" not in client.get("/tickets/?scope=organization").get_data(
        as_text=True)


def test_find_my_request_never_reveals_and_resends_links(client, make_ticket, mailbox):
    ticket = make_ticket(None, email="val@example.com")
    mailbox.messages.clear()
    known = client.post("/tickets/find", data={"email": "val@example.com"},
                        follow_redirects=True)
    unknown = client.post("/tickets/find", data={"email": "nobody@example.com"},
                          follow_redirects=True)
    assert known.data == unknown.data
    mail = mailbox.wait_for(1)[0]
    assert mail["X-Envelope-To"] == "val@example.com" and ticket.reference in mailbox.text(mail)


def test_expired_or_tampered_links_get_a_clear_message(app_factory, make_ticket, app):
    from portal.tickets.links import make_ticket_token

    ticket = make_ticket(None, email="val@example.com")
    token = make_ticket_token(ticket, "val@example.com")
    client = app.test_client()
    tampered = client.get(f"/tickets/link/{token[:-2]}xx", follow_redirects=True)
    assert b"This link is not valid" in tampered.data
    other_email = make_ticket_token(ticket, "mallory@example.com")
    assert b"no longer opens" in client.get(f"/tickets/link/{other_email}",
                                             follow_redirects=True).data
    app.config["TICKET_LINK_MAX_AGE"] = -1
    assert b"This link has expired" in client.get(f"/tickets/link/{token}",
                                                  follow_redirects=True).data
    assert client.get(f"/tickets/{ticket.reference}").status_code == 404


def test_visitor_tickets_are_claimed_when_the_email_is_confirmed(client, make_ticket, mailbox):
    ticket = make_ticket(None, email="val@example.com")
    client.post("/auth/register", data={"name": "Val", "email": "val@example.com",
                                        "password": "ferry lantern", "confirm": "ferry lantern"})
    assert ticket.requester_id is None
    link = next(line for line in mailbox.text(mailbox.wait_for(1)[-1]).splitlines()
                if "/auth/confirm/" in line)
    client.get(link.strip().replace("http://localhost", ""))
    db.session.expire_all()
    assert ticket.requester_id is not None
    assert ticket.reference.encode() in client.get("/tickets/").data
