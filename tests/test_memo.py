"""Per-process caches of rarely changing lists (portal/cluster/memo.py): pages stop reading
them on every request, yet show a change at once in the process that made it and within
about a second in any other process or host (through the change feed)."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import event

from portal.agent import services as agent_services
from portal.cluster import changes
from portal.extensions import db
from portal.tickets.models import Group


def statements(client, url: str) -> list[str]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def test_agent_lists_are_read_once_then_follow_own_writes(app, agent_client):
    agent_client.get("/agent/")
    assert not any("FROM groups" in s for s in statements(agent_client, "/agent/"))

    db.session.add(Group(name="Escalations desk"))
    db.session.commit()
    assert "Escalations desk" in agent_client.get("/agent/").text


def test_a_rolled_back_write_changes_nothing(app, agent_client):
    agent_client.get("/agent/")
    before = changes.version(agent_services.CHOICES)
    db.session.add(Group(name="Never committed"))
    db.session.flush()
    db.session.rollback()
    assert changes.version(agent_services.CHOICES) == before
    assert "Never committed" not in agent_client.get("/agent/").text


def test_another_processes_write_is_seen_through_the_change_feed(app, agent_client):
    changes.follower().refresh()  # the fixtures' own writes (the agent's account) are seen
    agent_client.get("/agent/")
    other = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    other.execute("INSERT INTO groups (name, auto_assign) VALUES ('Night shift', 0)")
    other.commit()
    time.sleep(1.1)  # past the follower's poll interval
    assert "Night shift" not in agent_client.get("/agent/").text  # no feed row: still cached

    # What the ORM in another process records with the same write.
    other.execute("INSERT INTO change_feed (topic, created_at) VALUES (?, datetime('now'))",
                  (agent_services.CHOICES,))
    other.commit()
    other.close()
    deadline = time.monotonic() + 3
    while "Night shift" not in agent_client.get("/agent/").text:
        assert time.monotonic() < deadline, "another process's change was not seen"
        time.sleep(0.1)



def test_a_sign_in_keeps_the_agent_lists(app, agent_client, make_user):
    """A sign-in writes the user's last sign-in time, which is no change to the agents' lists;
    a change to what they show (the name) is."""
    password = "quartz lantern orbit 72"
    other = make_user("agent", email="sam@example.com", name="Sam Second", password=password)
    agent_client.get("/agent/")
    changes.follower().refresh()  # every change so far seen: the sign-in's own feed row
    before = changes.version(agent_services.CHOICES)  # (users) then moves no other topic
    signed_in = app.test_client().post("/auth/login",
                                       data={"email": other.email, "password": password})
    assert signed_in.status_code == 303
    assert changes.version(agent_services.CHOICES) == before

    other.name = "Sam Renamed"
    db.session.commit()
    assert changes.version(agent_services.CHOICES) != before
