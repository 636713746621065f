"""Problems: create from a surge, link, reply to all, solve all — each linked ticket once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal.db import utcnow
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.surges import problems
from portal.surges.models import ProblemIncident, Surge, SurgeFeedback, SurgeMember
from portal.tickets.models import Message, Status, Ticket, TicketType


def agent_messages(ticket: Ticket) -> list[Message]:
    return list(db.session.scalars(select(Message).where(
        Message.ticket_id == ticket.id, Message.from_agent.is_(True))))


def make_surge(tickets: list[Ticket]) -> Surge:
    """A surge record over these tickets (detection itself is tested in test_detection)."""
    from portal.surges.models import SimilarGroup

    now = utcnow()
    group = SimilarGroup(vector_sum=b"\0" * 4 * 384, size=len(tickets), first_at=now,
                         last_at=now)
    db.session.add(group)
    db.session.flush()
    surge = Surge(group_id=group.id, open_group_id=group.id, sensitivity="normal",
                  center=b"\0" * 4 * 384,
                  title=tickets[0].subject, window_minutes=30, count_at_alert=len(tickets),
                  expected=0.2, p_value=1e-9, member_count=len(tickets),
                  first_at=now - timedelta(minutes=30), last_at=now, detected_at=now)
    db.session.add(surge)
    db.session.flush()
    for t in tickets:
        db.session.add(SurgeMember(surge_id=surge.id, ticket_id=t.id, similarity=0.8))
    db.session.commit()
    return surge


def test_create_problem_links_the_ticked_members_only(agent_client, file_ticket):
    tickets = [file_ticket("Checkout fails with error 502", "Bad gateway at payment.", utcnow())
               for _ in range(4)]
    surge = make_surge(tickets)
    page = agent_client.get(f"/agent/surges/{surge.id}")
    assert page.status_code == 200
    assert page.text.count('name="ticket"') == 4 and page.text.count("checked") >= 4

    stray = tickets[3]
    response = agent_client.post(f"/agent/surges/{surge.id}/problem", data={
        "subject": "Checkout 502 errors", "ticket": [str(t.id) for t in tickets[:3]]})
    assert response.status_code == 302
    problem = db.session.scalar(select(Ticket).where(Ticket.type == TicketType.PROBLEM))
    linked = db.session.scalars(select(ProblemIncident.incident_id)).all()
    assert sorted(linked) == sorted(t.id for t in tickets[:3]) and stray.id not in linked
    assert db.session.get(Surge, surge.id).problem_id == problem.id
    assert db.session.scalar(select(SurgeFeedback.verdict)) == "new_problem"
    # The problem page lists them with requesters.
    page = agent_client.get(f"/agent/problems/{problem.id}")
    assert all(t.requester_email in page.text for t in tickets[:3])
    assert stray.requester_email not in page.text
    # The report counts them, and times the surge from its first ticket to the problem.
    report = agent_client.get("/agent/surges/report")
    assert report.status_code == 200
    assert "4 tickets; 3 linked to problems (75%)" in report.text
    # Linking the same tickets again through "link to existing" adds nothing twice.
    again = agent_client.post(f"/agent/surges/{surge.id}/link", data={
        "reference": problem.reference, "ticket": [str(t.id) for t in tickets]})
    assert again.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ProblemIncident)) == 4


def test_reply_to_all_and_solve_touch_each_linked_ticket_once(agent_client, agent,
                                                              file_ticket):
    tickets = [file_ticket("Checkout fails", "502 at payment.", utcnow(),
                           email=f"buyer{i}@example.com", name=f"Buyer{i} Smith")
               for i in range(3)]
    outsider = file_ticket("Checkout fails", "502 too, but not linked.", utcnow())
    problem = problems.create_problem("Checkout 502", agent, tickets)
    problems.set_opt_out(problem, tickets[2].id, True)
    db.session.commit()
    before = db.session.scalar(select(func.count()).select_from(OutboxMessage))

    form = {"body": "Hello {{requester.first_name}}, the checkout is fixed ({{ticket.reference}}).",
            "solve": "y", "form_key": "k" * 32}
    assert agent_client.post(f"/agent/problems/{problem.id}/reply", data=form).status_code == 302
    # A double submit of the same form sends nothing more.
    assert agent_client.post(f"/agent/problems/{problem.id}/reply", data=form).status_code == 302

    db.session.expire_all()
    for i, ticket in enumerate(tickets):
        (reply,) = agent_messages(ticket)
        assert reply.internal is False
        assert reply.body.startswith(f"Hello Buyer{i},")
        assert ticket.reference in reply.body
        mails = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.ticket_id == ticket.id, OutboxMessage.template == "ticket_reply")).all()
        assert [m.recipient for m in mails] == [f"buyer{i}@example.com"]
    assert [t.status for t in tickets] == [Status.SOLVED, Status.SOLVED, Status.OPEN]
    assert db.session.get(Ticket, problem.id).status == Status.SOLVED
    assert agent_messages(outsider) == []
    after = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    # Three replies and two "solved" emails; nothing for the outsider, nothing twice.
    assert after - before == 5


def test_an_incident_belongs_to_one_problem(agent, file_ticket):
    ticket = file_ticket("Checkout fails", "502.", utcnow())
    problems.create_problem("First", agent, [ticket])
    second = problems.create_problem("Second", agent, [])
    try:
        problems.link(second, [ticket], agent)
    except problems.ProblemError as exc:
        assert "another problem" in str(exc)
    else:
        raise AssertionError("linked twice")


def test_report_shows_a_weekly_trend_and_exports_surges_as_csv(agent_client, agent,
                                                                file_ticket):
    old = [file_ticket("Login loops", "The sign-in page reloads.", utcnow() - timedelta(days=20))
           for _ in range(2)]
    recent = [file_ticket("=HYPERLINK(\"x\") checkout", "502 at payment.", utcnow())
              for _ in range(3)]
    surge = make_surge(recent)
    problem = problems.create_problem("Checkout 502 errors", agent, recent[:2])
    db.session.commit()
    page = agent_client.get("/agent/surges/report")
    assert page.status_code == 200
    weeks = page.text.split('id="trend-title"')[1].split("</table>")[0]
    # Five weeks of the 30 days: the old tickets in the first rows, the new ones last.
    assert weeks.count("<tr><td>") == 5
    last = weeks.rsplit("<tr><td>", 1)[1]
    assert "<td>3</td><td>2 (67%)</td><td>1</td>" in last
    assert any("<td>2</td><td>0 (0%)</td><td>0</td>" in row for row in weeks.split("<tr><td>"))
    assert problem.id and old

    export = agent_client.get("/agent/surges/report.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    lines = export.text.splitlines()
    assert lines[0].startswith("surge,title,first_ticket_at")
    assert lines[1].startswith(f"{surge.id},")
    # A title that a spreadsheet would run as a formula stays text.
    assert "'=HYPERLINK" in lines[1] and ",=HYPERLINK" not in lines[1]
