"""A worker's first queue page compiles no query: gunicorn's master compiled them before
forking (portal.agent.warm_up), the reads of the SLA sweep that page runs included; and a
change commits without building webhook payloads when no endpoint would receive them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats

from portal import agent as agent_domain
from portal.agent import jobs
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.lifecycle import change_status
from portal.tickets.models import Status, Ticket, TicketEvent


def _compiled_during(action) -> list[str]:
    """The statements SQLAlchemy compiled (missed its compiled cache) while `action` ran."""
    compiled: list[str] = []

    def listener(_conn, _cursor, statement, _parameters, context, _executemany):
        if context is not None and context.cache_hit is CacheStats.CACHE_MISS:
            compiled.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return compiled


def _sweep_has_work(customer, agent, make_ticket) -> tuple[Ticket, Ticket]:
    """A ticket solved long ago (autoclose is due) and one whose first reply is overdue."""
    long_solved = make_ticket(customer, subject="Solved long ago",
                              created_at=utcnow() - timedelta(days=40))
    long_solved.status, long_solved.solved_at = Status.SOLVED, utcnow() - timedelta(days=30)
    overdue = make_ticket(customer, subject="Waiting", created_at=utcnow() - timedelta(days=2),
                          assignee_id=agent.id)
    overdue.first_response_due_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    return long_solved, overdue


def test_the_first_queue_page_compiles_no_read_after_the_warm_up(app, agent_client, agent,
                                                                customer, make_ticket):
    long_solved, overdue = _sweep_has_work(customer, agent, make_ticket)
    agent_domain.warm_up(app)  # as gunicorn.conf.py's on_starting does before forking

    compiled = _compiled_during(lambda: agent_client.get("/agent/"))

    db.session.expire_all()
    assert long_solved.status == Status.CLOSED  # the sweep ran, with work to do
    assert overdue.first_response_breached
    assert [s for s in compiled if s.startswith("SELECT")] == []


def test_the_warm_up_writes_nothing(app, agent, customer, make_ticket):
    long_solved, overdue = _sweep_has_work(customer, agent, make_ticket)
    events = db.session.query(TicketEvent).count()
    agent_domain.warm_up(app)
    db.session.expire_all()
    assert (long_solved.status, overdue.first_response_breached) == (Status.SOLVED, False)
    assert db.session.query(TicketEvent).count() == events
    assert jobs._last_sweep.get(app.instance_path) is None  # the first queue read still sweeps


def test_a_change_builds_no_webhook_payload_without_an_endpoint(app, agent, customer,
                                                                make_ticket):
    """Building a ticket's payload reads its assignee and tags: with no endpoint enabled the
    commit reads neither (it was most of the SLA sweep's cost at 100,000 tickets)."""
    ticket = make_ticket(customer, assignee_id=agent.id)
    ticket_id = ticket.id
    db.session.commit()
    db.session.expire_all()
    ticket = db.session.get(Ticket, ticket_id)
    change_status(ticket, Status.SOLVED, agent)
    db.session.flush()
    statements: list[str] = []

    def listener(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    reads = [s for s in statements if s.startswith("SELECT")]
    assert reads and all("FROM webhook_endpoints" in s for s in reads), reads
