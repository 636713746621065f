from sqlalchemy import func, select

from portal.extensions import db
from portal.tickets.demo import seed_tickets
from portal.tickets.models import Message, Status, Ticket


def test_demo_tickets_cover_every_status_with_threads(customer, agent, customer_client):
    seed_tickets(customer, agent)
    db.session.commit()
    statuses = set(db.session.scalars(select(Ticket.status)))
    assert statuses == set(Status)
    assert db.session.scalar(select(func.count(Ticket.id))) >= 12
    assert db.session.scalar(select(func.count(Message.id)).where(Message.internal))
    assert db.session.scalar(select(Ticket).where(Ticket.csat_rating == "good"))
    page = customer_client.get("/tickets/")
    assert page.status_code == 200 and b"Webhook deliveries time out" in page.data
