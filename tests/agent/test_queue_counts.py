"""The tab counts the database keeps (migration scale5_0002) against the same counts taken from
the tickets, after every kind of change, on SQLite and PostgreSQL; and a full queue page that
counts no tickets for its tabs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, event, func, insert, select, update

from portal.agent.queue import COUNTED_VIEWS, _view_condition, view_counts
from portal.agent.services import Changes, apply_changes, merge
from portal.auth.models import Role
from portal.auth.services import create_user
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.models import Priority, Status, Ticket


def _counted(agent, now) -> dict[str, int]:
    """Every tab's count taken from the tickets themselves."""
    return {view: db.session.scalar(
        select(func.count(Ticket.id)).where(_view_condition(view, agent, now)))
        for view in COUNTED_VIEWS}


def _check_every_change():
    now = utcnow()
    agent = create_user("count-agent@example.com", "Cy Agent", "a long password 1", Role.AGENT,
                        confirmed=True)
    other = create_user("count-other@example.com", "Ola Agent", "a long password 1", Role.AGENT,
                        confirmed=True)
    db.session.commit()

    def kept_equals_counted(**expected) -> None:
        counts = view_counts(agent, now)
        assert counts == _counted(agent, now)
        assert {view: counts[view] for view in expected} == expected

    def ticket(**fields) -> Ticket:
        fields.setdefault("resolution_due_at", now + timedelta(hours=1))
        t = Ticket(subject="Help", requester_name="Val", requester_email="v@example.com",
                   created_at=now, updated_at=now, last_activity_at=now,
                   priority=Priority.NORMAL, **fields)
        db.session.add(t)
        db.session.flush()
        return t

    tickets = [ticket() for _ in range(5)] + [
        ticket(status=Status.PENDING, assignee_id=agent.id),
        ticket(status=Status.SOLVED, assignee_id=agent.id),
        ticket(status=Status.ON_HOLD, assignee_id=other.id, stale_at=now)]
    db.session.commit()
    kept_equals_counted(open=7, unassigned=5, mine=1, pending=1, stale=1, due=6)

    # Through the services: assigned, solved, reopened, merged.
    apply_changes(tickets[0], Changes(assignee_id=agent.id), agent)
    apply_changes(tickets[1], Changes(status=Status.SOLVED), agent)
    db.session.commit()
    kept_equals_counted(open=6, unassigned=3, mine=2)
    apply_changes(tickets[1], Changes(status=Status.OPEN), agent)
    merge(tickets[2], tickets[3], agent)  # the duplicate is closed
    db.session.commit()
    kept_equals_counted(open=6, unassigned=3)

    # Flagged stale and cleared; moved between agents; statements over many rows.
    tickets[4].stale_at = now
    db.session.commit()
    kept_equals_counted(stale=2)
    tickets[4].stale_at = None
    tickets[5].assignee_id = other.id
    db.session.commit()
    kept_equals_counted(stale=1, mine=1)
    db.session.execute(update(Ticket).where(Ticket.assignee_id == other.id)
                       .values(assignee_id=agent.id, status=Status.OPEN))
    db.session.commit()
    kept_equals_counted(mine=3, pending=0, stale=1)
    db.session.execute(insert(Ticket), [
        {"subject": "Bulk", "requester_name": "Val", "requester_email": "v@example.com",
         "created_at": now, "updated_at": now, "last_activity_at": now,
         "status": status, "priority": Priority.LOW} for status in
        (Status.NEW, Status.PENDING, Status.CLOSED)])
    db.session.commit()
    kept_equals_counted(open=8, unassigned=5, pending=1)

    # Due on earlier days (kept rows) and today (counted): by the first response while it is
    # unanswered and earlier, else by the resolution; answered, paused, moved, not waiting.
    due = view_counts(agent, now)["due"]
    late = [ticket(resolution_due_at=now - timedelta(days=d)) for d in (3, 3, 40)]
    first = ticket(first_response_due_at=now - timedelta(days=2),
                   resolution_due_at=now + timedelta(days=5))
    answered = ticket(first_response_due_at=now - timedelta(days=2),
                      first_response_at=now - timedelta(days=1),
                      resolution_due_at=now + timedelta(days=5))
    none = ticket(resolution_due_at=None)
    db.session.commit()
    kept_equals_counted(due=due + 4)
    first.first_response_at = now  # answered: due at its resolution, in five days
    late[0].status = Status.PENDING
    late[1].resolution_due_at = now - timedelta(minutes=5)  # moved to today
    none.first_response_due_at = now - timedelta(days=9)
    answered.first_response_at = None  # its first response is due again, two days ago
    db.session.commit()
    kept_equals_counted(due=due + 4)
    db.session.execute(update(Ticket).where(Ticket.id.in_([t.id for t in late]))
                       .values(resolution_due_at=now + timedelta(days=1), status=Status.OPEN))
    db.session.commit()
    kept_equals_counted(due=due + 2)

    # Deleted: one, then every ticket of an agent; and an agent deleted (assignee cleared).
    db.session.execute(delete(Ticket).where(Ticket.id == tickets[4].id))
    db.session.commit()
    kept_equals_counted(open=13)
    db.session.execute(delete(Ticket).where(Ticket.assignee_id == agent.id,
                                            Ticket.status == Status.SOLVED))
    db.session.execute(update(Ticket).where(Ticket.id == tickets[1].id)
                       .values(assignee_id=other.id))
    db.session.commit()
    unassigned = view_counts(agent, now)["unassigned"]
    db.session.execute(delete(type(other)).where(type(other).id == other.id))  # key clears it
    db.session.commit()
    kept_equals_counted(open=13, unassigned=unassigned + 1)
    db.session.execute(update(Ticket).values(status=Status.CLOSED))
    db.session.commit()
    kept_equals_counted(open=0, unassigned=0, mine=0, pending=0, stale=0, due=0)


def test_tab_counts_stay_exact_through_every_change(app):
    with app.test_request_context():  # service changes build links for their emails
        _check_every_change()


def test_tab_counts_stay_exact_through_every_change_on_postgres(pg_app):
    with pg_app.test_request_context():
        _check_every_change()


def test_tab_counts_count_no_tickets_but_due(agent, customer, make_ticket):
    """After a change, only the tickets due today count for the "due" tab (its earlier days
    and the other five tabs are read from the kept rows)."""
    for i in range(3):
        make_ticket(customer, subject=f"Open {i}")
    view_counts(agent)
    make_ticket(customer, subject="Changes the stamp")
    statements = []

    def listener(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()).lower())

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        counts = view_counts(agent)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert counts["open"] == counts["unassigned"] == 4
    # The tickets due today, in two parts (by first response, by resolution), beside the sum
    # of the kept earlier days; nothing else is counted from the tickets.
    counting = [s for s in statements if "count(tickets.id)" in s]
    assert len(counting) == 1 and "queue_due_days" in counting[0], statements
    assert counting[0].count("count(tickets.id)") == 2


def _check_folding():
    """Folding the added rows keeps every count, leaves a row per kind, and counts rows added
    after it."""
    from portal.agent import counts
    from portal.tickets.models import QueueCount, QueueDueDay

    now = utcnow()
    agent = create_user("fold-agent@example.com", "Fy Agent", "a long password 1", Role.AGENT,
                        confirmed=True)
    tickets = [Ticket(subject="Help", requester_name="Val", requester_email="v@example.com",
                      created_at=now, updated_at=now, last_activity_at=now,
                      priority=Priority.NORMAL, resolution_due_at=now - timedelta(days=d % 3))
               for d in range(9)]
    db.session.add_all(tickets)
    db.session.commit()
    for t in tickets[:4]:
        t.assignee_id = agent.id
    tickets[5].status = Status.SOLVED
    db.session.commit()
    before = view_counts(agent, now)
    assert before == _counted(agent, now)
    assert counts.compact() > 0
    db.session.commit()
    assert view_counts(agent, now) == before
    kinds = db.session.execute(select(QueueCount.status, QueueCount.assignee_id,
                                      QueueCount.stale)).all()
    assert len(kinds) == len(set(kinds)) == 2  # new: unassigned, and the agent's
    days = db.session.scalars(select(QueueDueDay.day)).all()
    assert len(days) == len(set(days)) == 3
    tickets[6].assignee_id = agent.id
    db.session.commit()
    assert view_counts(agent, now) == _counted(agent, now)
    counts.compact()
    db.session.commit()
    assert view_counts(agent, now) == _counted(agent, now)


def test_folding_the_kept_rows_keeps_the_counts(app):
    with app.app_context():
        _check_folding()


def test_folding_the_kept_rows_keeps_the_counts_on_postgres(pg_app):
    with pg_app.app_context():
        _check_folding()
