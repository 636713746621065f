"""The signed-in user is remembered per process (auth.services.signed_in_user): pages stop
reading the user's row on every request, yet a deactivation, a new password or an
organisation's change takes effect at once in the process that made it and within about a
second in the others."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import event

from portal.extensions import db
from tests.conftest import PASSWORD


def statements(client, url: str) -> tuple[int, list[str]]:
    """The status and SQL of one request, started with an empty identity map (as each
    production request is: the tests' shared session would otherwise hold the user)."""
    db.session.expunge_all()
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if "change_feed" not in statement:
            seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        status = client.get(url).status_code
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return status, seen


def reads_users(seen: list[str]) -> bool:
    return any("FROM users" in s and s.startswith("SELECT users.id, users.email") for s in seen)


def test_a_signed_in_page_reads_no_user_row_once_remembered(app, customer_client):
    customer_client.get("/tickets/")
    status, seen = statements(customer_client, "/tickets/")
    assert status == 200 and not reads_users(seen), seen


def test_the_request_may_change_its_user(app, customer_client, customer):
    """The remembered user is copied into the request's session: a change is saved, and the
    next request (this process) shows it."""
    customer_client.get("/account")
    response = customer_client.post("/account", data={
        "action": "profile", "profile-name": "Casey Renamed", "profile-email": customer.email},
        follow_redirects=True)
    assert response.status_code == 200
    db.session.expunge_all()
    assert "Casey Renamed" in customer_client.get("/account").text


def test_a_deactivated_user_is_signed_out_at_once(app, admin_client, make_user):
    user = make_user("customer", email="dana@example.com")
    other = app.test_client()
    other.post("/auth/login", data={"email": user.email, "password": PASSWORD})
    assert statements(other, "/account")[0] == 200  # remembered now
    admin_client.post(f"/admin/users/{user.id}/deactivate")
    status, _seen = statements(other, "/account")
    assert status == 302  # to the sign-in page


def test_a_change_in_another_process_is_seen_within_a_second(app, customer_client, customer):
    """Another worker deactivates the account: its feed row reaches this process's cache."""
    assert statements(customer_client, "/account")[0] == 200
    other = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    other.execute("UPDATE users SET active = 0 WHERE id = ?", (customer.id,))
    other.execute("INSERT INTO change_feed (topic, created_at) VALUES ('users', datetime('now'))")
    other.commit()
    other.close()
    deadline = time.monotonic() + 3
    while statements(customer_client, "/account")[0] == 200:
        assert time.monotonic() < deadline, "another process's deactivation was not seen"
        time.sleep(0.1)


def test_an_organisation_that_stops_sharing_hides_its_tickets_at_once(app, world):
    """The user's organisation is remembered with the user: a change to it is a change."""
    colleague = world.client_for(world.colleague)
    assert world.ticket.subject in colleague.get("/tickets/?scope=organization").text
    world.owner.organization.shares_tickets = False
    db.session.commit()
    db.session.expunge_all()
    assert world.ticket.subject not in colleague.get("/tickets/?scope=organization").text
