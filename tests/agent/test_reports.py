"""Support metrics against a hand-made history with known answers (worked out in comments)."""

import csv
import io
import re
from datetime import date, datetime

import pytest

from portal.agent.reports import ReportFilters, build_report, percentile
from portal.extensions import db
from portal.kb.models import Article, ArticleView, ArticleVote, KbCategory, KbSection, SearchLog
from portal.tickets.models import Priority, Status, SuggestionEvent, Ticket, TicketEvent

NOW = datetime(2026, 11, 10, 12, 0)
PERIOD = ReportFilters(start=date(2026, 11, 1), end=date(2026, 11, 3))


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute)


@pytest.fixture
def history(app, customer, make_user):
    alex = make_user("agent", name="Alex Agent")
    bea = make_user("agent", name="Bea Agent")

    def ticket(created, status, **fields):
        t = Ticket(subject="Help", requester_id=customer.id, requester_name=customer.name,
                   requester_email=customer.email, created_at=created, updated_at=created,
                   last_activity_at=created, status=status, priority=Priority.NORMAL, **fields)
        db.session.add(t)
        db.session.flush()
        return t

    def event(t, kind, when, actor=None, old=None, new=None):
        db.session.add(TicketEvent(ticket_id=t.id, kind=kind, created_at=when, old_value=old,
                                   new_value=new, actor_id=actor.id if actor else None))

    # T1: answered in 60 min by Alex, solved the same day with one reply, rated good.
    t1 = ticket(at(1, 10), Status.SOLVED, assignee_id=alex.id, first_response_at=at(1, 11),
                first_response_due_at=at(1, 18), resolution_due_at=at(4, 10),
                solved_at=at(1, 14), public_reply_count=1, csat_rating="good",
                csat_comment="Great", csat_at=at(2, 9))
    event(t1, "reply", at(1, 11), alex)
    event(t1, "status", at(1, 14), alex, "open", "solved")
    # T2: Bea answers late (breach) after 120 min, solved, reopened, solved again; rated bad.
    t2 = ticket(at(1, 12), Status.SOLVED, assignee_id=bea.id, first_response_at=at(1, 14),
                first_response_due_at=at(1, 13), first_response_breached=True,
                resolution_due_at=at(4, 12), solved_at=at(3, 12), public_reply_count=2,
                reopen_count=1, csat_rating="bad", csat_comment="Slow", csat_at=at(3, 13))
    event(t2, "reply", at(1, 14), bea)
    event(t2, "status", at(2, 12), bea, "open", "solved")
    event(t2, "status", at(2, 15), None, "solved", "open")
    event(t2, "reply", at(3, 11), bea)
    event(t2, "status", at(3, 12), bea, "open", "solved")
    # T3: Alex answers in 30 min; still open; escalated.
    t3 = ticket(at(2, 9), Status.OPEN, assignee_id=alex.id, first_response_at=at(2, 9, 30),
                first_response_due_at=at(2, 17), resolution_due_at=at(5, 9))
    event(t3, "reply", at(2, 9, 30), alex)
    event(t3, "escalation", at(2, 10), None, None, "due soon")
    # T4: new, unassigned, no reply.
    ticket(at(3, 8), Status.NEW)
    # T5: from before the period, still open (backlog); T6: after the period.
    ticket(at(30, 9, month=10), Status.OPEN, assignee_id=alex.id,
           first_response_at=at(30, 10, month=10))
    ticket(at(5, 9), Status.NEW)

    # Self-service.
    cat = KbCategory(name="Billing", slug="billing")
    section = KbSection(category=cat, name="Invoices", slug="invoices")
    x = Article(section=section, title="Download an invoice", slug="invoice", body="...")
    y = Article(section=section, title="Reset your password", slug="password", body="...")
    db.session.add_all([cat, section, x, y])
    db.session.flush()
    for q, n, when in [("refund", 0, at(1, 8)), ("refund", 0, at(2, 8)), ("invoice", 5, at(2, 9)),
                       ("vpn", 0, at(3, 9)), ("old", 0, at(28, 9, month=10))]:
        db.session.add(SearchLog(query=q, normalized=q, result_count=n, created_at=when))
    key = f"u:{customer.id}"
    db.session.add_all([
        ArticleView(article_id=x.id, viewer_key=key, created_at=at(3, 7, 30)),  # before T4
        ArticleView(article_id=y.id, viewer_key=key, created_at=at(1, 9, 30)),  # before T1
        ArticleView(article_id=y.id, viewer_key=key, created_at=at(1, 7)),  # 3 h before: no
        ArticleView(article_id=x.id, viewer_key="v:browser", created_at=at(2, 11)),
        ArticleView(article_id=x.id, viewer_key="v:browser", created_at=at(20, 11, month=10)),
    ])
    for kind, n in [("impression", 3), ("open", 2), ("deflected", 1)]:
        for i in range(n):
            db.session.add(SuggestionEvent(kind=kind, form_key=f"{kind}{i}", created_at=at(2, 10)))
    db.session.add_all([
        ArticleVote(article_id=y.id, voter_key="u:1", helpful=False, updated_at=at(1, 9)),
        ArticleVote(article_id=y.id, voter_key="u:2", helpful=False, updated_at=at(2, 9)),
        ArticleVote(article_id=x.id, voter_key="u:1", helpful=False, updated_at=at(2, 9)),
        ArticleVote(article_id=x.id, voter_key="u:2", helpful=True, updated_at=at(2, 9)),
    ])
    db.session.commit()
    return {"alex": alex, "bea": bea, "x": x, "y": y}


def test_percentile_is_nearest_rank():
    assert percentile([30, 60, 120], 90) == 120
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90) == 90
    assert percentile([], 90) is None


def test_ticket_metrics(history):
    report = build_report(PERIOD, now=NOW)
    assert [(d.day.day, d.created, d.solved, d.reopened, d.backlog) for d in report.days] == [
        (1, 2, 1, 0, 2),  # T2 and T5 unsolved at the end of the day
        (2, 1, 1, 1, 3),  # T2 reopened, T3 new
        (3, 1, 1, 0, 3),  # T2 solved, T4 new
    ]
    assert (report.created, report.solved, report.reopened, report.backlog) == (4, 3, 1, 3)
    assert sorted(report.frt_minutes) == [30, 60, 120]
    assert (report.frt_median, report.frt_p90) == (60, 120)
    assert (report.resolution_median, report.resolution_p90) == (1560, 2880)
    assert report.fcr_rate == 0.5
    assert report.reopen_rate == pytest.approx(1 / 3)
    assert report.escalation_rate == 0.25
    assert (report.sla_met, report.sla_due) == (4, 5)
    assert report.csat == 0.5
    assert [c[2] for c in report.csat_comments] == ["Slow", "Great"]


def test_per_agent_table(history):
    report = build_report(PERIOD, now=NOW)
    rows = {r.name: r for r in report.agents}
    alex, bea = rows["Alex Agent"], rows["Bea Agent"]
    assert (alex.solved, alex.replies, alex.open_now, alex.frt_median, alex.csat) == (
        1, 2, 2, 45, 1.0)
    assert (bea.solved, bea.replies, bea.open_now, bea.frt_median, bea.csat) == (1, 2, 0, 120, 0.0)


def test_filters_narrow_the_tickets(history):
    only_alex = ReportFilters(start=PERIOD.start, end=PERIOD.end, assignee_id=history["alex"].id)
    report = build_report(only_alex, now=NOW)
    assert (report.created, report.solved, report.backlog) == (2, 1, 2)  # T1+T3; T3+T5 open
    assert [d.backlog for d in report.days] == [1, 2, 2]


def test_self_service_metrics(history):
    report = build_report(PERIOD, now=NOW)
    assert report.searches == 4
    assert report.article_views == 4
    assert (report.impressions, report.deflections) == (3, 1)
    assert report.self_service_ratio == 1.0
    assert report.no_result_searches == [("refund", 2), ("vpn", 1)]
    y, x = history["y"], history["x"]
    assert report.not_helpful == [(y.id, y.title, 2), (x.id, x.title, 1)]
    assert sorted(report.read_before_ticket) == sorted([(x.id, x.title, 1), (y.id, y.title, 1)])


def test_reports_page_and_csv(history, agent_client):
    page = agent_client.get("/agent/reports?start=2026-11-01&end=2026-11-03")
    assert page.status_code == 200
    assert "<svg" in page.text and "Tickets created and solved per day" in page.text
    assert "50.0%" in page.text  # FCR and CSAT
    response = agent_client.get("/agent/reports/daily.csv?start=2026-11-01&end=2026-11-03")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["date", "created", "solved", "reopened", "backlog"]
    assert [r[:4] for r in rows[1:]] == [["2026-11-01", "2", "1", "0"],
                                         ["2026-11-02", "1", "1", "1"],
                                         ["2026-11-03", "1", "1", "0"]]
    agents_csv = agent_client.get("/agent/reports/agents.csv?start=2026-11-01&end=2026-11-03")
    assert "Alex Agent,1,2,2,45.0,1.0" in agents_csv.text
    assert agent_client.get("/agent/reports/nope.csv").status_code == 404


def test_bad_period_is_explained(agent_client):
    page = agent_client.get("/agent/reports?start=yesterday&end=2026-11-03")
    assert page.status_code == 200 and "is not a date" in page.text


def test_customers_cannot_see_reports(customer_client):
    assert customer_client.get("/agent/reports").status_code == 404
    assert customer_client.get("/agent/reports/daily.csv").status_code == 404


def test_cached_report_is_reused_until_something_changes(history):
    from sqlalchemy import select

    from portal.agent.reports import cached_report

    first = cached_report(PERIOD)
    assert cached_report(PERIOD) is first
    urgent = ReportFilters(start=PERIOD.start, end=PERIOD.end, priority=Priority.URGENT)
    assert cached_report(urgent) is not first  # keyed by the filters
    ticket_id = db.session.scalar(select(Ticket.id).limit(1))
    db.session.add(TicketEvent(ticket_id=ticket_id, kind="status", old_value="open",
                               new_value="solved", created_at=at(2, 15)))
    db.session.commit()
    again = cached_report(PERIOD)
    assert again is not first and again.solved == first.solved + 1


def test_filtered_reports_follow_the_tickets_current_values(history):
    """Each event carries its ticket's report filters, kept equal to the ticket's by the
    database: a ticket given to another agent, priority or group after its events were
    written is reported under its new values, as when the report looked the ticket up."""
    from sqlalchemy import select

    from portal.tickets.models import Group

    alex, bea = history["alex"], history["bea"]
    t2 = db.session.scalar(select(Ticket).where(Ticket.assignee_id == bea.id))

    def report(**filters):
        return build_report(ReportFilters(start=PERIOD.start, end=PERIOD.end, **filters),
                            now=NOW)

    assert (report(assignee_id=bea.id).solved, report(assignee_id=bea.id).reopened) == (2, 1)
    group = Group(name="Escalations")
    db.session.add(group)
    db.session.flush()
    t2.assignee_id, t2.priority, t2.group_id = alex.id, Priority.URGENT, group.id
    db.session.commit()
    assert set(db.session.execute(
        select(TicketEvent.ticket_assignee_id, TicketEvent.ticket_priority,
               TicketEvent.ticket_group_id).where(TicketEvent.ticket_id == t2.id))
    ) == {(alex.id, Priority.URGENT, group.id)}
    assert report(assignee_id=bea.id).solved == 0
    assert (report(assignee_id=alex.id).solved, report(assignee_id=alex.id).reopened) == (3, 1)
    urgent = report(priority=Priority.URGENT)
    assert (urgent.solved, urgent.reopened) == (2, 1)
    assert {r.name: r.replies for r in urgent.agents}.get("Bea Agent") == 2  # her replies
    assert report(priority=Priority.NORMAL).solved == 1
    assert report(group_id=group.id).solved == 2
    db.session.delete(group)  # the ticket's group_id is set to NULL by its foreign key
    db.session.commit()
    assert report(group_id=group.id).solved == 0
    # A new event takes the ticket's values when it is written.
    db.session.add(TicketEvent(ticket_id=t2.id, kind="status", old_value="solved",
                               new_value="open", created_at=at(3, 13)))
    db.session.commit()
    assert report(assignee_id=alex.id).reopened == 2


def test_a_filtered_report_reads_events_from_their_index_alone(history):
    """The status changes and replies of a filtered report are checked inside the index of
    ticket_events: no look-up of each event's ticket."""
    from sqlalchemy import event

    if db.engine.dialect.name != "sqlite":
        return
    statements = []

    def listener(_conn, _cursor, statement, parameters, *_args):
        tables = set(re.findall(r"\sFROM (\w+)", statement))
        if tables == {"ticket_events"}:
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        build_report(ReportFilters(start=PERIOD.start, end=PERIOD.end,
                                   priority=Priority.URGENT, group_id=1), now=NOW)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) == 2  # status changes per day, replies per agent
    for statement, parameters in statements:
        plan = [row[3] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters)]
        reads = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
        assert reads and all(s.startswith("SEARCH ticket_events USING COVERING INDEX ix_ticket_"
                                          "events_") for s in reads), plan


def test_charts_follow_the_report(agent_client, customer, make_ticket):
    """The charts are rendered once per cached report, and again when the report is."""
    from portal.db import utcnow

    today = utcnow().strftime("%d %b")
    make_ticket(customer, subject="First")
    for _ in range(2):
        assert f"<title>{today}: 1 created</title>" in agent_client.get("/agent/reports").text
    make_ticket(customer, subject="Second")
    assert f"<title>{today}: 2 created</title>" in agent_client.get("/agent/reports").text


def test_warm_up_compiles_the_report_statements(app, history):
    """gunicorn's master warms the report up before forking: a worker's first report, with
    or without a filter, then compiles none of its statements."""
    from sqlalchemy import event
    from sqlalchemy.engine import default

    from portal.agent import reports

    reports.warm_up(app)
    misses = []

    def listener(_conn, _cursor, statement, _parameters, context, _many):
        if context.cache_hit is default.CACHE_MISS:  # compiled for this execution
            misses.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        for f in (PERIOD, ReportFilters(start=PERIOD.start, end=PERIOD.end,
                                        priority=Priority.URGENT)):
            assert build_report(f, now=NOW).created >= 0
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert misses == []
