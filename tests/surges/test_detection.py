"""Detection end to end: tickets embedded by the real encoder, grouped, scanned."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal import signals
from portal.extensions import db
from portal.jobs.models import Job, ScheduledRun
from portal.jobs.registry import SCHEDULES
from portal.jobs.services import enqueue_due_schedules
from portal.mail.models import OutboxMessage
from portal.surges import detection, services
from portal.surges.models import (
    SimilarGroup,
    Surge,
    SurgeFeedback,
    SurgeMember,
    TicketVector,
)
from portal.tickets.models import Group
from tests.surges.conftest import SEMANTIC


def surges() -> list[Surge]:
    return list(db.session.scalars(select(Surge)))


@SEMANTIC
def test_a_new_ticket_is_embedded_by_its_job(app, file_ticket, run_jobs):
    from portal.db import utcnow

    ticket = file_ticket("Checkout fails with error 502", "The payment page says bad gateway.",
                         utcnow())
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Job).where(
        Job.kind == "surges.embed")) == 1
    run_jobs()
    row = db.session.get(TicketVector, ticket.id)
    assert row is not None and len(row.array()) == 384


@SEMANTIC
def test_one_spike_raises_one_surge_of_the_right_tickets(app, stream, make_user):
    agent = make_user("agent", email="oncall@example.com")
    group = Group(name="Payments", members=[agent])
    db.session.add(group)
    db.session.commit()
    now, spike = stream(spike=14, groups={"group_id": group.id})
    heard = []

    def hear(surge):  # what webhooks subscribe to
        heard.append(surge)

    signals.surge_detected.connect(hear)
    try:
        raised = services.scan(now)
        db.session.commit()
    finally:
        signals.surge_detected.disconnect(hear)
    assert heard == raised
    # Scanning again, this minute or the next ones, raises nothing more.
    for minute in range(3):
        assert services.scan(now + timedelta(minutes=minute)) == []
        db.session.commit()

    assert len(raised) == 1 and len(surges()) == 1
    surge = raised[0]
    members = set(db.session.scalars(select(SurgeMember.ticket_id).where(
        SurgeMember.surge_id == surge.id)))
    spike_ids = {t.id for t in spike}
    assert len(members & spike_ids) / len(members) >= 0.9  # precision
    assert len(members & spike_ids) >= 0.7 * len(spike_ids)  # grouped
    assert "502" in surge.words or "checkout" in surge.words
    assert surge.first_at <= surge.last_at and surge.member_count == len(members)
    assert sum(surge.sparkline_values()) >= 1
    # The assigned group was emailed once.
    mails = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template == "surge_detected")).all()
    assert [m.recipient for m in mails] == ["oncall@example.com"]


@SEMANTIC
def test_quiet_topics_raise_no_surge(app, stream):
    now, _ = stream(spike=2)
    assert services.scan(now) == []


@SEMANTIC
def test_not_a_surge_quiets_the_group_for_a_day(app, stream, agent_client, file_ticket):
    now, _ = stream(spike=14)
    (surge,) = services.scan(now)
    db.session.commit()
    response = agent_client.post(f"/agent/surges/{surge.id}/dismiss")
    assert response.status_code == 302
    db.session.expire_all()
    assert surge.status == "dismissed"
    assert db.session.scalar(select(SurgeFeedback.verdict)) == "not_a_surge"
    # More of the same within the day: no new surge.
    rows = [("Checkout fails with error 502", "Still broken at the payment step, 502.")] * 8
    for i, (subject, text) in enumerate(rows):
        file_ticket(subject, text, now + timedelta(minutes=5 + i))
    db.session.commit()
    services.embed_pending(limit=50)
    assert services.scan(now + timedelta(minutes=20)) == []
    assert len(surges()) == 1


@SEMANTIC
def test_two_workers_scanning_the_same_minute_raise_one_surge(app, stream, run_jobs):
    now, _ = stream(spike=14)
    # Both workers look at the same minute: the slot is claimed once...
    schedule = SCHEDULES["surges.scan"]
    claimed = [enqueue_due_schedules(name, {}, now=now) for name in ("w1", "w2")]
    assert sorted(claimed) == [0, len(SCHEDULES)]
    assert db.session.scalar(select(func.count()).select_from(ScheduledRun).where(
        ScheduledRun.name == schedule.name)) == 1
    run_jobs()  # the real worker runs the one scan job
    (surge,) = surges()
    # ...and a scan that read the groups before the other's surge committed cannot add one.
    group = db.session.get(SimilarGroup, surge.group_id)
    members = [m.ticket_id for m in surge.members]
    verdict = detection.Verdict(True, timedelta(hours=2), 14, 0.5, 1e-12)
    assert services._raise(group, detection.centroid(group.sum_array()), members, verdict,
                           services.sensitivity(), now) is None
    db.session.commit()
    assert len(surges()) == 1
