from sqlalchemy import func, select

from portal.agent.demo import seed_support
from portal.extensions import db
from portal.tickets.models import CannedReply, Group, SlaPolicy, TicketCategory


def test_seed_support_routes_categories_and_is_idempotent(app, agent):
    db.session.add(TicketCategory(name="Billing & invoices"))
    seed_support(agent)
    seed_support(agent)
    db.session.commit()
    assert db.session.scalar(select(func.count(Group.id))) == 3
    assert db.session.scalar(select(func.count()).select_from(SlaPolicy)) == 4
    assert db.session.scalar(select(func.count(CannedReply.id))) == 4
    billing = db.session.scalar(select(TicketCategory))
    assert billing.group.name == "Billing"
