"""The change feed: a process notices other processes' committed changes, including a smaller
sequence number that commits after a larger one, through LISTEN/NOTIFY or polling."""

import os
import time

from sqlalchemy import create_engine, text

from portal.cluster import changes
from portal.extensions import db

POSTGRES_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL")


def wait_for(condition, timeout=5.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "not seen in time"
        time.sleep(0.01)
    return time.monotonic() - start


def other_process_change(engine, topic: str):
    """A change committed through another connection, as another host would (returns it
    uncommitted: the caller commits)."""
    conn = engine.connect()
    conn.execute(text("INSERT INTO change_feed (topic, created_at) VALUES (:t, now())"),
                 {"t": topic})
    conn.execute(text("SELECT pg_notify('portal_changes', :t)"), {"t": topic})
    return conn


def test_a_smaller_sequence_committed_after_a_larger_one_is_seen(pg_app):
    before = changes.version("kb")
    engine = create_engine(POSTGRES_URL)
    slow = other_process_change(engine, "kb")  # takes the smaller sequence number
    fast = other_process_change(engine, "kb")
    fast.commit()
    wait_for(lambda: changes.version("kb") == before + 1)
    slow.commit()  # commits last, below the follower's highest seen number
    assert wait_for(lambda: changes.version("kb") == before + 2) < 1.5
    for conn in (slow, fast):
        conn.close()
    engine.dispose()


def test_still_seen_by_polling_when_the_listen_connection_is_killed(pg_app):
    follower = changes.follower()
    before = changes.version("settings")
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        killed = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = :name"), {"name": follower.name}).scalar()
    assert killed >= 1  # (a previous test's follower of the same name may still be closing)
    change = other_process_change(engine, "settings")
    change.commit()
    change.close()
    assert wait_for(lambda: changes.version("settings") == before + 1) < 2.5
    engine.dispose()


def test_own_commit_is_seen_at_once_and_a_rollback_is_not(app):
    """SQLite too: read your own writes without waiting for the poll."""
    before = changes.version("kb")
    changes.record("kb")
    db.session.rollback()
    changes.record("kb")
    changes.record("kb")  # once per transaction
    db.session.commit()
    assert changes.version("kb") == before + 1
