"""Concurrent writers on one SQLite file never fail with "database is locked"."""

import threading
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import func, select

from portal.auth.models import User
from portal.extensions import db
from portal.tickets.models import Setting

THREADS = 8
ROUNDS = 25


def run_in_threads(target, count: int = THREADS) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def worker(n):
        try:
            start.wait()
            target(n)
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_read_then_write_transactions_from_many_threads(app):
    """Each round reads a counter and writes it back plus one, like a view count or a sequence.

    Deferred transactions would fail here at once: a reader that becomes a writer after another
    writer committed gets SQLITE_BUSY whatever the busy timeout. BEGIN IMMEDIATE queues instead,
    and no increment is lost.
    """
    db.session.add(Setting(key="counter", value="0"))
    db.session.commit()

    def increment(_n):
        for _ in range(ROUNDS):
            with app.app_context():
                setting = db.session.get(Setting, "counter")
                setting.value = str(int(setting.value) + 1)
                db.session.commit()

    errors = run_in_threads(increment)
    assert errors == []
    db.session.expire_all()
    assert db.session.get(Setting, "counter").value == str(THREADS * ROUNDS)


def test_concurrent_sign_ups_over_http(live_server):
    """Real requests on the threaded server: each sign-up reads (is the email free?) then writes."""

    def sign_up(n):
        for i in range(3):
            browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            data = urllib.parse.urlencode({
                "name": f"User {n}-{i}", "email": f"user{n}-{i}@example.com",
                "password": "ferry lantern", "confirm": "ferry lantern",
            }).encode()
            request = urllib.request.Request(f"{live_server.url}/auth/register", data=data)  # noqa: S310
            with browser.open(request, timeout=30) as response:
                assert "Your account is ready" in response.read().decode()

    errors = run_in_threads(sign_up)
    assert errors == []
    db.session.expire_all()
    assert db.session.scalar(select(func.count(User.id))) == THREADS * 3


def test_sixteen_customers_filing_at_once_with_a_worker_running(live_server, worker):
    """The load that found a 500 for a saved ticket (its email read the ticket after commit):
    16 visitors filing over HTTP while a worker sends mail. Every answer is a success and every
    saved ticket has its confirmation queued in the same transaction."""
    from urllib.error import HTTPError

    from portal.mail.models import OutboxMessage
    from portal.tickets.models import Ticket

    failures: list[int] = []

    def file_tickets(n):
        for i in range(3):
            data = urllib.parse.urlencode({
                "subject": f"Printer {n}-{i} is on fire", "description": "It smokes a lot.",
                "type": "incident", "name": f"Visitor {n}", "email": f"v{n}-{i}@example.com",
                "form_key": f"key-{n}-{i}",
            }).encode()
            request = urllib.request.Request(f"{live_server.url}/tickets/new", data=data)  # noqa: S310
            browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            try:
                with browser.open(request, timeout=60) as response:
                    assert "TKT-" in response.read().decode()
            except HTTPError as exc:
                failures.append(exc.code)

    errors = run_in_threads(file_tickets, count=16)
    assert errors == [] and failures == []
    db.session.commit()
    db.session.expire_all()
    tickets = db.session.scalars(select(Ticket)).all()
    assert len(tickets) == 48
    confirmed = set(db.session.scalars(select(OutboxMessage.ticket_id)))
    assert {t.id for t in tickets} <= confirmed


def test_reading_takes_no_write_lock(app, customer):
    """A sign-in checks the password inside db.reading(): other writers need not wait for it."""
    import sqlite3

    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")

    def write_elsewhere():
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE users SET name = 'Written meanwhile'")
            other.execute("COMMIT")
        finally:
            other.close()

    with db.reading():
        db.session.scalars(select(User)).all()
        write_elsewhere()
    db.session.scalars(select(User)).all()  # outside it, the first query takes the write lock
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            write_elsewhere()
    finally:
        db.session.rollback()


def test_test_thread_reads_do_not_block_the_live_server(live_server, customer):
    """A browser test that checks the database mid-flow must not stall the server's writes."""
    import time

    db.session.scalars(select(User)).all()  # a read transaction stays open in the test thread
    data = urllib.parse.urlencode({"name": "Late", "email": "late@example.com",
                                   "password": "ferry lantern",
                                   "confirm": "ferry lantern"}).encode()
    started = time.monotonic()
    request = urllib.request.Request(f"{live_server.url}/auth/register", data=data)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 200
    assert time.monotonic() - started < 5


def test_a_request_does_not_leave_its_transaction_mode_behind(app, client):
    """A worker thread serves many requests; what one GET chose must not leak into the next
    piece of work on that thread (say, a CLI-style job or another request)."""
    from portal.db import _immediate

    assert _immediate.get() is True
    client.get("/auth/login")
    assert _immediate.get() is True
