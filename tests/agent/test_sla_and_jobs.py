from datetime import datetime, time, timedelta

from sqlalchemy import event, func, select

from portal.db import utcnow
from portal.extensions import db
from portal.tickets import sla
from portal.tickets.lifecycle import change_status
from portal.tickets.models import Group, Priority, SlaPolicy, Status, TicketCategory, TicketEvent
from portal.tickets.sla import BusinessHours

# Monday 2026-11-23; London is UTC+0 in winter, New York UTC-5.
LONDON = BusinessHours(frozenset(range(5)), time(9), time(17), "Europe/London")


def test_business_hours_skip_nights_and_weekends():
    friday_4pm = datetime(2026, 11, 27, 16, 0)
    assert LONDON.add_minutes(friday_4pm, 120) == datetime(2026, 11, 30, 10, 0)  # Monday 10:00
    saturday = datetime(2026, 11, 28, 12, 0)
    assert LONDON.add_minutes(saturday, 60) == datetime(2026, 11, 30, 10, 0)
    assert LONDON.minutes_between(friday_4pm, datetime(2026, 11, 30, 10, 0)) == 120
    new_york = BusinessHours(frozenset(range(5)), time(9), time(17), "America/New_York")
    # 09:00 in New York is 14:00 UTC in November.
    assert new_york.add_minutes(datetime(2026, 11, 23, 13, 0), 30) == datetime(2026, 11, 23, 14, 30)


def test_business_hours_follow_daylight_saving():
    # London switches to BST on 29 March 2026: 09:00 local is 08:00 UTC on the Monday after.
    before = datetime(2026, 3, 27, 16, 30)  # Friday, 16:30 UTC = 16:30 GMT
    assert LONDON.add_minutes(before, 60) == datetime(2026, 3, 30, 8, 30)


def test_policy_in_business_hours_sets_due_times(app, customer, make_ticket):
    db.session.add(SlaPolicy(priority=Priority.HIGH, first_response_minutes=60,
                             resolution_minutes=480, business_hours=True))
    sla.save_business_hours(LONDON)
    db.session.commit()
    ticket = make_ticket(customer, priority=Priority.HIGH, created_at=datetime(2026, 11, 27, 16))
    assert ticket.first_response_due_at == datetime(2026, 11, 27, 17, 0)  # the last hour
    assert ticket.resolution_due_at == datetime(2026, 11, 30, 16, 0)  # 1 h Fri + 7 h Mon


def test_clock_pauses_while_pending(app, customer, agent, make_ticket):
    ticket = make_ticket(customer, created_at=utcnow() - timedelta(hours=2))
    due = ticket.resolution_due_at
    change_status(ticket, Status.PENDING, agent)
    ticket.sla_paused_at -= timedelta(hours=5)  # it waited five hours for the customer
    change_status(ticket, Status.OPEN, agent)
    assert abs((ticket.resolution_due_at - due) - timedelta(hours=5)) < timedelta(seconds=5)


def test_escalation_job_flags_emails_and_counts(app, mailbox, agent, make_user, customer,
                                                 make_ticket):
    teammate = make_user("agent", email="tina@example.com", name="Tina")
    group = Group(name="Tier 2", members=[agent, teammate])
    db.session.add(group)
    db.session.commit()
    late = make_ticket(customer, subject="Server down", priority=Priority.URGENT,
                       created_at=utcnow() - timedelta(hours=2), assignee_id=agent.id,
                       group_id=group.id)
    make_ticket(customer, subject="Fine for now", priority=Priority.LOW)
    result = app.test_cli_runner().invoke(args=["tickets", "escalate"])
    assert result.exit_code == 0, result.output
    assert "Flagged 1 breach, escalated 1 ticket." in result.output
    db.session.expire_all()
    assert late.first_response_breached and late.escalated_at is not None
    messages = mailbox.wait_for(2)  # one message per recipient, each with its own status
    assert {m["X-Envelope-To"] for m in messages} == {agent.email, teammate.email}
    assert late.reference in messages[0]["Subject"] and "breached" in messages[0]["Subject"]
    assert "Server down" in mailbox.text(messages[0])
    # Running again changes nothing and sends nothing more.
    again = app.test_cli_runner().invoke(args=["tickets", "escalate"])
    assert "Flagged 0 breaches, escalated 0 tickets." in again.output
    assert db.session.scalar(select(func.count()).where(TicketEvent.kind == "escalation")) == 1


def test_autoclose_command(app, agent, customer, make_ticket):
    old = make_ticket(customer, status=Status.SOLVED, solved_at=utcnow() - timedelta(days=5))
    recent = make_ticket(customer, status=Status.SOLVED, solved_at=utcnow() - timedelta(days=1))
    result = app.test_cli_runner().invoke(args=["tickets", "autoclose"])
    assert "Closed 1 ticket solved over 4 days ago." in result.output
    db.session.expire_all()
    assert old.status == Status.CLOSED and old.closed_at is not None
    assert recent.status == Status.SOLVED


def test_reading_a_ticket_runs_the_cheap_check(agent_client, customer, make_ticket):
    stale = make_ticket(customer, status=Status.SOLVED, solved_at=utcnow() - timedelta(days=9))
    page = agent_client.get(f"/agent/tickets/{stale.id}")
    assert page.status_code == 200 and "badge-closed" in page.text
    assert "<em>solved</em> to <em>closed</em>" in page.text  # the timeline of this same view
    db.session.expire_all()
    assert stale.status == Status.CLOSED


def test_first_response_after_due_is_a_breach(agent_client, customer, make_ticket):
    ticket = make_ticket(customer, priority=Priority.URGENT,
                         created_at=utcnow() - timedelta(minutes=61))
    agent_client.post(f"/agent/tickets/{ticket.id}/reply", data={"body": "Sorry for the wait"})
    db.session.expire_all()
    assert ticket.first_response_breached


def test_routing_by_category_round_robin(app, agent, make_user, customer, make_ticket):
    second = make_user("agent", email="sam@example.com", name="Sam")
    group = Group(name="Billing", auto_assign=True, members=[agent, second])
    category = TicketCategory(name="Invoices", group=group)
    db.session.add_all([group, category])
    db.session.commit()
    first = make_ticket(customer, category=category)
    following = make_ticket(customer, category=category)
    assert first.group_id == group.id and following.group_id == group.id
    assert {first.assignee_id, following.assignee_id} == {agent.id, second.id}


def _overdue(customer, make_ticket):
    ticket = make_ticket(customer, subject="Nobody answered",
                         created_at=utcnow() - timedelta(hours=30))
    ticket.first_response_due_at = utcnow() - timedelta(hours=2)
    db.session.commit()
    return ticket


def test_the_queue_checks_slas_itself_while_no_worker_does(agent_client, customer,
                                                           make_ticket):
    ticket = _overdue(customer, make_ticket)
    assert agent_client.get("/agent/").status_code == 200
    db.session.refresh(ticket)
    assert ticket.first_response_breached


def test_the_queue_leaves_slas_to_a_running_worker(agent_client, customer, make_ticket):
    """A worker claimed the last `tickets.sla` slot: an agent's page view does not do its
    work (with a backlog, hundreds of escalations inside one request)."""
    from portal.jobs.models import ScheduledRun

    ticket = _overdue(customer, make_ticket)
    db.session.add(ScheduledRun(name="tickets.sla", slot=utcnow() - timedelta(seconds=50),
                                claimed_by="worker-1"))
    db.session.commit()
    assert agent_client.get("/agent/").status_code == 200
    db.session.refresh(ticket)
    assert not ticket.first_response_breached


def test_a_queue_request_flags_a_small_batch_and_escalates_nothing(agent_client, customer,
                                                                    make_ticket):
    """While no worker runs the check, a page view flags at most SWEEP_BATCH breaches, the
    most overdue first, and sends no escalation (mail only a worker delivers): a backlog is
    never worked off inside one request."""
    from portal.agent import jobs

    tickets, created = [], utcnow() - timedelta(hours=30)
    for hours in range(jobs.SWEEP_BATCH + 3):
        ticket = make_ticket(customer, subject=f"Waiting {hours}", created_at=created)
        ticket.first_response_due_at = utcnow() - timedelta(hours=2 + hours)
        tickets.append(ticket)
    db.session.commit()
    assert agent_client.get("/agent/").status_code == 200
    db.session.expire_all()
    flagged = {t.subject for t in tickets if t.first_response_breached}
    assert flagged == {f"Waiting {h}" for h in range(3, jobs.SWEEP_BATCH + 3)}
    assert all(t.escalated_at is None for t in tickets)
    assert db.session.scalar(select(func.count()).where(TicketEvent.kind == "escalation")) == 0


def _check_sla_reads_only_tickets_left_to_flag() -> list[tuple]:
    """Waiting tickets past due: escalated and flagged (nothing left to do), one escalated but
    not flagged, one untouched. Returns the statements check_sla ran."""
    from portal.agent.jobs import check_sla
    from portal.db import refresh_planner_statistics
    from portal.tickets.models import Ticket

    now = utcnow()

    def ticket(subject, **fields):
        made = Ticket(subject=subject, requester_name="Val", requester_email="v@example.com",
                      created_at=now - timedelta(days=2), updated_at=now, last_activity_at=now,
                      priority=Priority.NORMAL, first_response_at=now - timedelta(days=1),
                      resolution_due_at=now - timedelta(hours=3), **fields)
        db.session.add(made)
        return made

    done = ticket("Done", escalated_at=now - timedelta(hours=4), resolution_breached=True)
    for _ in range(300):  # as in a backlog: most waiting tickets were dealt with long ago
        ticket("Long done", escalated_at=now - timedelta(hours=4), resolution_breached=True)
    unflagged = ticket("Unflagged", escalated_at=now - timedelta(hours=4))
    untouched = ticket("Untouched")
    db.session.commit()
    refresh_planner_statistics(db.session)  # as the migrations and a job every 6 h do
    statements = []

    def listener(_conn, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert check_sla(now, escalating=False) == (2, 0)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    db.session.commit()
    assert (done.resolution_breached, unflagged.resolution_breached,
            untouched.resolution_breached, untouched.escalated_at) == (True, True, True, None)
    assert check_sla(now) == (0, 1)  # escalating: the untouched one
    db.session.commit()
    assert untouched.escalated_at is not None
    return statements


def test_the_sla_check_reads_only_the_tickets_left_to_flag(app):
    """The check walks ix_tickets_sla_check, which holds only waiting tickets not escalated or
    not flagged as breached; through the status indexes it read every waiting ticket due so
    far (90,000 at a million tickets, nearly all escalated and breached long ago)."""
    statements = _check_sla_reads_only_tickets_left_to_flag()
    statement, parameters = next(s for s in statements if s[0].lstrip().startswith("SELECT"))
    plan = [row[3] for row in db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + statement, parameters)]
    assert any("ix_tickets_sla_check" in step for step in plan), plan


def test_the_sla_check_reads_only_the_tickets_left_to_flag_on_postgres(pg_app):
    with pg_app.test_request_context():
        _check_sla_reads_only_tickets_left_to_flag()
