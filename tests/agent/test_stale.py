"""Stale-ticket alerts with a controlled clock: flagged once per idle period, timeline event,
one email to the assignee (or the group), cleared by activity, a queue view and settings."""

from datetime import timedelta

from sqlalchemy import func, select

from portal.agent import stale
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.lifecycle import touch
from portal.tickets.models import Group, Status, TicketEvent


def stale_events(ticket) -> int:
    return db.session.scalar(select(func.count(TicketEvent.id)).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "stale"))


def test_idle_tickets_are_flagged_once_per_period_and_activity_clears_it(
        app, mailbox, agent, make_user, customer, make_ticket):
    teammate = make_user("agent", email="tina@example.com", name="Tina")
    group = Group(name="Tier 2", members=[agent, teammate])
    db.session.add(group)
    db.session.commit()
    now = utcnow()
    idle_new = make_ticket(customer, subject="Nobody picked me up", group_id=group.id,
                           created_at=now - timedelta(hours=3))
    fresh = make_ticket(customer, subject="Just filed", created_at=now - timedelta(hours=1))
    idle_open = make_ticket(customer, subject="Waiting on us", status=Status.OPEN,
                            assignee_id=agent.id, created_at=now - timedelta(hours=30))
    awaiting = make_ticket(customer, subject="Customer's turn", status=Status.PENDING,
                           created_at=now - timedelta(days=30))

    assert stale.check_stale(now) == 2
    db.session.commit()
    assert idle_new.stale_at == now and idle_open.stale_at == now
    assert fresh.stale_at is None and awaiting.stale_at is None  # off for pending by default
    assert stale_events(idle_new) == 1
    sent = mailbox.messages
    assert {m["X-Envelope-To"] for m in sent} == {agent.email, teammate.email}
    assert [m["X-Envelope-To"] for m in sent if idle_open.reference in m["Subject"]] == [
        agent.email]  # assigned: the assignee only
    assert "no activity for 3" not in sent[0]["Subject"]  # the threshold, not the idle time
    assert any("No activity for 2 hours" in m["Subject"] for m in sent)

    # The same period again: nothing new.
    assert stale.check_stale(now + timedelta(minutes=30)) == 0
    # Another full period with no activity: flagged (and mailed) once more; meanwhile the
    # fresh ticket has become idle too. The open one's 24 hours have not passed again.
    assert stale.check_stale(now + timedelta(hours=2, minutes=1)) == 2
    db.session.commit()
    assert stale_events(idle_new) == 2 and stale_events(fresh) == 1
    assert stale_events(idle_open) == 1

    # Activity clears the flag.
    touch(idle_open)
    db.session.commit()
    assert idle_open.stale_at is None


def test_stale_view_lists_and_counts_flagged_tickets(app, agent_client, customer, make_ticket):
    idle = make_ticket(customer, subject="Forgotten printer",
                       created_at=utcnow() - timedelta(hours=5))
    make_ticket(customer, subject="Brand new question")
    stale.check_stale()
    db.session.commit()
    page = agent_client.get("/agent/?view=stale").get_data(as_text=True)
    assert "Forgotten printer" in page and "Brand new question" not in page
    assert 'Stale <span class="count">1</span>' in page
    timeline = agent_client.get(f"/agent/tickets/{idle.id}").get_data(as_text=True)
    assert "flagged as stale: no activity for 5 hours" not in timeline  # threshold, not age
    assert "flagged as stale: no activity for 2 hours" in timeline


def test_admin_sets_thresholds_and_zero_turns_an_alert_off(app, admin_client, customer,
                                                           make_ticket):
    page = admin_client.get("/admin/support/stale").get_data(as_text=True)
    assert 'value="2"' in page and 'value="168"' in page
    response = admin_client.post("/admin/support/stale", data={
        "new": "0", "open": "48", "pending": "72", "on_hold": "168"})
    assert response.status_code == 303
    assert stale.threshold_hours()[Status.NEW] == 0
    make_ticket(customer, created_at=utcnow() - timedelta(days=2))
    assert stale.check_stale() == 0
    bad = admin_client.post("/admin/support/stale", data={
        "new": "-1", "open": "", "pending": "72", "on_hold": "x"})
    assert bad.status_code == 422 and "0 turns the alert off" in bad.get_data(as_text=True)


def test_the_scheduled_job_runs_the_check(app, customer, make_ticket, run_jobs):
    from portal.jobs.services import run_schedule_now

    idle = make_ticket(customer, created_at=utcnow() - timedelta(hours=3))
    run_schedule_now("tickets.stale")
    run_jobs()
    db.session.refresh(idle)
    assert idle.stale_at is not None
