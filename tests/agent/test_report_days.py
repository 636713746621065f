"""The day counts the database keeps for the unfiltered report (migration scale4_0002) against
the same figures computed from the tickets and events, after every kind of change, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, insert, select, update

from portal.agent import reports
from portal.agent.reports import ReportFilters, build_report
from portal.agent.services import Changes, apply_changes, merge, reply
from portal.auth.models import Role, User
from portal.auth.services import create_user
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.lifecycle import record_event
from portal.tickets.models import Priority, Status, Ticket, TicketEvent


def _kept_equals_computed(f: ReportFilters, now):
    """The kept day counts and replies per author equal those read from the raw rows."""
    start, until = f.start_at, max(f.end_at, now)

    def nonzero(*per_day):
        return [{d: n for d, n in counts.items() if n} for counts in per_day]

    assert nonzero(*reports._daily_volume_kept(start, until)) == nonzero(
        *reports._daily_volume(f, start, until))
    computed = dict(db.session.execute(
        select(TicketEvent.actor_id, func.count())
        .where(TicketEvent.kind == "reply", TicketEvent.actor_id.is_not(None),
               TicketEvent.created_at >= f.start_at, TicketEvent.created_at < f.end_at)
        .group_by(TicketEvent.actor_id)).all())
    kept = {a.agent_id: a.replies for a in build_report(f, now=now).agents if a.replies}
    assert kept == {a: n for a, n in computed.items() if a in kept or n}


def _check_every_change(now):
    agent = create_user("days-agent@example.com", "Dee Agent", "a long password 1", Role.AGENT,
                        confirmed=True)
    helper = create_user("days-helper@example.com", "Hal Agent", "a long password 1",
                         Role.AGENT, confirmed=True)
    f = ReportFilters.from_args({}, today=now.date())[0]

    def ticket(days_ago: int, **fields) -> Ticket:
        when = now - timedelta(days=days_ago, hours=1)
        t = Ticket(subject="Help", requester_name="Val", requester_email="v@example.com",
                   created_at=when, updated_at=when, last_activity_at=when,
                   priority=Priority.NORMAL, **fields)
        db.session.add(t)
        db.session.flush()
        return t

    tickets = [ticket(d) for d in (1, 2, 2, 5, 9, 40)]  # one before the 30-day period
    db.session.commit()
    _kept_equals_computed(f, now)

    # Replies, status changes, a solve and a reopening, through the services.
    for t in tickets[:4]:
        reply(t, agent, "Here is what to do.", internal=False, new_status=Status.OPEN)
    reply(tickets[0], helper, "Also this.", internal=False)
    apply_changes(tickets[1], Changes(status=Status.SOLVED), agent)
    apply_changes(tickets[2], Changes(status=Status.SOLVED), agent)
    db.session.commit()
    apply_changes(tickets[1], Changes(status=Status.OPEN), agent)  # reopened
    db.session.commit()
    _kept_equals_computed(f, now)

    # Escalations: two on one ticket count it once; removing one keeps it, both uncounts it.
    for t in (tickets[0], tickets[0], tickets[3], tickets[5]):
        record_event(t, "escalation", None, None, "breached")
    db.session.commit()
    assert build_report(f, now=now).escalated == 2  # tickets[5] was created before the period
    _kept_equals_computed(f, now)
    first = db.session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == tickets[0].id, TicketEvent.kind == "escalation")).first()
    db.session.delete(first)
    db.session.commit()
    _kept_equals_computed(f, now)
    db.session.execute(delete(TicketEvent).where(TicketEvent.ticket_id == tickets[0].id,
                                                 TicketEvent.kind == "escalation"))
    db.session.commit()
    assert build_report(f, now=now).escalated == 1
    _kept_equals_computed(f, now)

    # Several escalations of a ticket in one statement, then all removed in one.
    db.session.execute(insert(TicketEvent), [
        {"ticket_id": tickets[1].id, "kind": "escalation", "created_at": now}] * 3)
    db.session.commit()
    assert build_report(f, now=now).escalated == 2
    _kept_equals_computed(f, now)
    db.session.execute(delete(TicketEvent).where(TicketEvent.ticket_id == tickets[1].id,
                                                 TicketEvent.kind == "escalation"))
    db.session.commit()
    assert build_report(f, now=now).escalated == 1
    _kept_equals_computed(f, now)

    # Events edited: moved to another day, another ticket, another kind.
    solve = db.session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == tickets[2].id, TicketEvent.new_value == "solved")).one()
    solve.created_at = now - timedelta(days=3)
    db.session.commit()
    _kept_equals_computed(f, now)
    escalation = db.session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == tickets[3].id, TicketEvent.kind == "escalation")).one()
    escalation.ticket_id = tickets[4].id
    db.session.commit()
    _kept_equals_computed(f, now)
    escalation.kind = "note"
    db.session.commit()
    _kept_equals_computed(f, now)
    db.session.execute(update(TicketEvent).where(TicketEvent.kind == "reply",
                                                 TicketEvent.actor_id == agent.id)
                       .values(created_at=now - timedelta(days=7)))
    db.session.commit()
    _kept_equals_computed(f, now)

    # A ticket created on another day; a merge; a deleted author; a deleted ticket.
    tickets[4].created_at = now - timedelta(days=12)
    db.session.commit()
    _kept_equals_computed(f, now)
    merge(tickets[3], tickets[0], agent)
    db.session.commit()
    _kept_equals_computed(f, now)
    # The author of a reply: the foreign key clears the events' author.
    db.session.execute(delete(User).where(User.id == helper.id))
    db.session.commit()
    _kept_equals_computed(f, now)
    record_event(tickets[2], "escalation", None, None, "breached")
    db.session.commit()
    gone = tickets[2].id
    db.session.expunge_all()
    db.session.execute(delete(Ticket).where(Ticket.id == gone))  # its events go with it (key)
    db.session.commit()
    _kept_equals_computed(f, now)
    report = build_report(f, now=now)
    assert (report.created, report.escalated) == (4, 0)  # tickets 0, 1, 3 and 4 (moved)
    assert report.solved >= 1 and report.reopened == 1
    _figures_equal_the_tickets(f, now, agent.id)


def _figures_equal_the_tickets(f: ReportFilters, now, agent_id: int):
    """The durations, SLA and first-contact figures read in one pass each (numbers and flags
    into numpy) equal those counted ticket by ticket."""
    tickets = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    for number, t in enumerate(tickets):  # answered, on time or late, with or without targets
        t.first_response_at = t.created_at + timedelta(minutes=7 * number + 1, seconds=number)
        t.first_response_due_at = None if number == 1 else t.created_at + timedelta(minutes=20)
        t.first_response_breached = t.first_response_at > t.created_at + timedelta(minutes=20)
        t.resolution_breached = number % 2 == 0
        t.public_reply_count = number % 3
        if number % 2 == 0:
            t.solved_at = t.created_at + timedelta(minutes=50 * number + 3, seconds=number)
        t.assignee_id = [None, agent_id][number % 2 or number == 2]
    db.session.commit()

    def minutes(start, end):
        return round((end - start).total_seconds()) / 60

    answered = [t for t in tickets if t.first_response_at and f.start_at <= t.first_response_at
                < f.end_at]
    solved = [t for t in tickets if t.solved_at and f.start_at <= t.solved_at < f.end_at
              and t.merged_into_id is None]
    assert solved and answered
    report = build_report(f, now=now)
    assert report.frt_minutes == sorted(minutes(t.created_at, t.first_response_at)
                                        for t in answered)
    assert report.resolution_minutes == sorted(minutes(t.created_at, t.solved_at)
                                               for t in solved)
    first_due = [t for t in answered if t.first_response_due_at is not None]
    resolution_due = [t for t in solved if t.resolution_due_at is not None]
    missed = sum(t.first_response_breached for t in first_due) + sum(
        t.resolution_breached for t in resolution_due)
    assert (report.sla_due, report.sla_met) == (
        len(first_due) + len(resolution_due), len(first_due) + len(resolution_due) - missed)
    assert (report.fcr_base, report.fcr) == (
        sum(t.public_reply_count >= 1 for t in solved),
        sum(t.public_reply_count == 1 and t.reopen_count == 0 for t in solved))
    per_agent = {a.agent_id: (a.solved, a.frt_minutes) for a in report.agents}
    assert agent_id in per_agent
    for assignee in {t.assignee_id for t in solved + answered} - {None}:
        assert per_agent[assignee] == (
            sum(t.assignee_id == assignee for t in solved),
            sorted(minutes(t.created_at, t.first_response_at) for t in answered
                   if t.assignee_id == assignee))


def test_day_counts_stay_exact_through_every_change(app):
    with app.test_request_context():  # replies build links for their emails
        _check_every_change(utcnow())


def test_day_counts_stay_exact_through_every_change_on_postgres(pg_app):
    with pg_app.test_request_context():
        _check_every_change(utcnow())
