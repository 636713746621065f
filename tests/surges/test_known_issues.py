"""Known issues: the banner for close text only, and followers get the solution by email."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.db import utcnow
from portal.extensions import db
from portal.surges import known_issues, problems
from portal.surges.models import ProblemFollower
from tests.conftest import wait_for_jobs
from tests.surges.conftest import SEMANTIC

HX = {"HX-Request": "true"}
PUBLIC_TEXT = "Checkout errors (502 Bad Gateway at the payment step) — we are working on it"


def published_problem(agent, file_ticket):
    incident = file_ticket("Checkout fails with error 502", "Payment page says bad gateway.",
                           utcnow())
    problem = problems.create_problem("Checkout 502", agent, [incident])
    known_issues.publish(problem, PUBLIC_TEXT)
    db.session.commit()
    return problem, incident


@SEMANTIC
def test_banner_shows_for_close_text_and_not_for_unrelated_text(client, agent, file_ticket):
    problem, _ = published_problem(agent, file_ticket)
    assert PUBLIC_TEXT in client.get("/").text  # the home page's banner

    close = client.get("/tickets/new/suggestions", headers=HX, query_string={
        "subject": "I get a 502 error when I try to pay", "description": "checkout broken"})
    assert close.status_code == 200 and PUBLIC_TEXT in close.text
    assert f"/known-issues/{problem.id}" in close.text

    unrelated = client.get("/tickets/new/suggestions", headers=HX, query_string={
        "subject": "How do I change the email address on my account?", "description": ""})
    assert unrelated.status_code == 200 and PUBLIC_TEXT not in unrelated.text


@SEMANTIC
def test_a_visitor_follows_and_gets_the_solution_by_email(client, agent, file_ticket, mailbox):
    problem, incident = published_problem(agent, file_ticket)
    wait_for_jobs()  # the worker has embedded the incident
    page = client.get(f"/known-issues/{problem.id}")
    assert "I&#39;m affected too" in page.text or "I'm affected too" in page.text
    db.session.commit()  # the test shares the requests' session: end the page's read

    response = client.post(f"/known-issues/{problem.id}/follow",
                           data={"email": "Visitor@Example.com"})
    assert response.status_code == 302
    again = client.post(f"/known-issues/{problem.id}/follow", data={"email": "visitor@example.com"})
    assert again.status_code == 302
    assert db.session.scalars(select(ProblemFollower.email)).all() == ["visitor@example.com"]

    problems.reply_to_all(problem, agent, "Fixed: payments work again.", "f" * 32, solve=True)
    db.session.commit()
    to_visitor = mailbox.to("visitor@example.com")
    subjects = sorted(m["Subject"] for m in to_visitor)
    assert len(subjects) == 2 and subjects[0].startswith("Solved:")
    solved = next(m for m in to_visitor if m["Subject"].startswith("Solved:"))
    assert "payments work again" in mailbox.text(solved)
    # No longer a known issue once solved; the page is gone for customers.
    assert PUBLIC_TEXT not in client.get("/").text
    assert client.get(f"/known-issues/{problem.id}").status_code == 404
    # Its requester got the reply too, once.
    assert len(mailbox.to(incident.requester_email)) >= 1


def test_follow_needs_an_email_from_a_visitor(client, agent, file_ticket):
    problem, _ = published_problem(agent, file_ticket)
    response = client.post(f"/known-issues/{problem.id}/follow", data={"email": ""})
    assert response.status_code == 422
    assert db.session.scalars(select(ProblemFollower)).all() == []


@SEMANTIC
def test_a_new_ticket_close_to_an_open_problem_gets_the_link_hint(agent_client, agent,
                                                                   file_ticket):
    from portal.surges import services

    problem, _ = published_problem(agent, file_ticket)
    close = file_ticket("Error 502 when I try to pay", "Checkout broken: bad gateway.", utcnow())
    unrelated = file_ticket("Change my email address", "I have a new work address.", utcnow())
    db.session.commit()
    services.embed_pending()
    db.session.commit()
    page = agent_client.get(f"/agent/tickets/{close.id}").text
    assert f"Probably part of problem <a href=\"/agent/problems/{problem.id}\">" in page
    assert "Probably part of problem" not in agent_client.get(
        f"/agent/tickets/{unrelated.id}").text
    # The hint's button links it.
    response = agent_client.post(f"/agent/problems/{problem.id}/link-ticket",
                                 data={"incident": close.id})
    assert response.status_code == 302
    assert problems.problem_of(close).id == problem.id
    assert "Probably part of problem" not in agent_client.get(f"/agent/tickets/{close.id}").text


def test_a_follower_unfollows_with_the_link_in_the_email(client, agent, file_ticket, mailbox):
    problem, _ = published_problem(agent, file_ticket)
    response = client.post(f"/known-issues/{problem.id}/follow",
                           data={"email": "visitor@example.com"})
    assert response.status_code == 302
    (following,) = mailbox.to("visitor@example.com")
    link = re.search(r"https?://\S+/known-issues/unfollow/\S+", mailbox.text(following)).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]

    # Opening the link (as mail scanners do) only asks.
    page = client.get("/" + path)
    assert page.status_code == 200 and "Stop these emails" in page.text
    assert PUBLIC_TEXT in page.text and "Checkout 502" not in page.text  # not the staff subject
    db.session.commit()
    assert db.session.scalar(select(ProblemFollower.unfollowed_at)) is None
    # A forged or altered link names nobody.
    assert client.get("/known-issues/unfollow/" + path.rsplit("/", 1)[1][:-2] + "xx") \
        .status_code == 404
    assert client.get("/known-issues/unfollow/not-a-token").status_code == 404

    done = client.post("/" + path)
    assert done.status_code == 200 and "no longer receives emails" in done.text
    db.session.expire_all()
    assert db.session.scalar(select(ProblemFollower.unfollowed_at)) is not None

    problems.reply_to_all(problem, agent, "Fixed: payments work again.", "f" * 32, solve=True)
    db.session.commit()
    wait_for_jobs()
    assert len(mailbox.to("visitor@example.com")) == 1  # the solution went to nobody else
    # Still a deflection: the visitor did not file a ticket.
    assert known_issues.deflections(problem.created_at.replace(year=2000), utcnow()) == 1


def test_the_unfollow_button_needs_its_csrf_token(app, client, agent, file_ticket):
    problem, _ = published_problem(agent, file_ticket)
    follower = ProblemFollower(problem_id=problem.id, email="v@example.com", created_at=utcnow())
    db.session.add(follower)
    db.session.commit()
    with app.test_request_context():
        path = known_issues.unfollow_url(follower).split("://", 1)[1].split("/", 1)[1]
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        refused = client.post("/" + path)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert refused.status_code in (400, 422)
    db.session.expire_all()
    assert db.session.get(ProblemFollower, follower.id).unfollowed_at is None


def test_the_home_banner_is_kept_until_a_known_issue_changes(client, agent, file_ticket):
    """The home page reads the banner once per process; withdrawing the issue (or publishing
    another) shows at once."""
    from sqlalchemy import event

    problem, _ = published_problem(agent, file_ticket)
    assert PUBLIC_TEXT in client.get("/").text
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert PUBLIC_TEXT in client.get("/").text
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert not [s for s in seen if "known_issues" in s], seen

    known_issues.withdraw(problem)
    db.session.commit()
    assert PUBLIC_TEXT not in client.get("/").text


@SEMANTIC
def test_suggestions_and_known_issues_share_one_encoding(client, agent, file_ticket, run_jobs):
    """A long request text (past what the encoder reads) is encoded once per suggestion
    request: the known-issue match reads the suggestions' text, from the query cache."""
    from portal.kb.models import ArticleStatus
    from portal.kb.services import ArticleInput, create_article, create_category, create_section
    from portal.search import semantic

    section = create_section(create_category("Payments"), "Checkout")
    db.session.flush()
    create_article(ArticleInput(title="Checkout fails at the payment step",
                                body="Retry the payment after a bad gateway error.",
                                section_id=section.id), agent, status=ArticleStatus.PUBLISHED)
    published_problem(agent, file_ticket)
    run_jobs()  # the article indexed and embedded
    description = "The payment step fails with a bad gateway error. " * 12  # > 400 characters
    semantic._query_cache.clear()
    response = client.get("/tickets/new/suggestions", headers=HX, query_string={
        "subject": "Checkout error 502", "description": description})
    assert response.status_code == 200 and PUBLIC_TEXT in response.text
    assert "Checkout fails at the payment step" in response.text
    assert len(semantic._query_cache) == 1, [len(key) for key in semantic._query_cache]
