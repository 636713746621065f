"""Staff who answer from a ticket's portal page send an agent reply, not a customer message."""

from sqlalchemy import select

from portal.extensions import db
from portal.tickets.models import Message, Status


def test_an_agents_reply_on_the_portal_page_is_an_agent_reply(
        app, client, auth, customer, agent, make_ticket, mailbox):
    ticket = make_ticket(customer, subject="Printer broken")
    auth.login(agent.email)
    page = client.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
    assert "You reply as an agent" in page
    response = client.post(f"/tickets/{ticket.reference}/reply",
                           data={"body": "We are sending a technician."})
    assert response.status_code == 303
    message = db.session.scalar(select(Message).where(
        Message.ticket_id == ticket.id, Message.body == "We are sending a technician."))
    assert message.from_agent and not message.internal and message.author_id == agent.id
    db.session.refresh(ticket)
    assert ticket.first_response_at is not None and ticket.assignee_id == agent.id
    assert ticket.status == Status.OPEN
    (mail,) = mailbox.wait_for(1)
    assert mail["X-Envelope-To"] == customer.email
    assert "We are sending a technician." in mailbox.text(mail)


def test_an_agents_own_request_stays_a_customer_conversation(app, client, auth, agent,
                                                              make_ticket):
    ticket = make_ticket(agent, subject="My laptop is slow")
    auth.login(agent.email)
    assert "You reply as an agent" not in client.get(f"/tickets/{ticket.reference}").get_data(
        as_text=True)
    client.post(f"/tickets/{ticket.reference}/reply", data={"body": "Still slow today."})
    message = db.session.scalar(select(Message).where(Message.body == "Still slow today."))
    assert not message.from_agent
