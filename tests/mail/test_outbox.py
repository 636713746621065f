"""The mail outbox against a real SMTP server that refuses, then accepts: nothing is lost,
nothing is sent twice, a refused recipient fails alone with the server's reason."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.db import utcnow
from portal.extensions import db
from portal.jobs.models import Job, JobStatus
from portal.mail import send_mail
from portal.mail.models import MailStatus, OutboxMessage


class MoodySmtp:
    """An aiosmtpd handler that says 451 to everyone while `down`, and 550 to `unknown`."""

    def __init__(self) -> None:
        self.down = True
        self.unknown = {"gone@example.com"}
        self.received: list[tuple[str, bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.down:
            return "451 4.3.0 Try again later"
        if address in self.unknown:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def moody(app):
    from aiosmtpd.controller import Controller

    handler = MoodySmtp()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    yield handler
    controller.stop()


def outbox() -> dict[str, OutboxMessage]:
    db.session.commit()
    db.session.expire_all()
    return {m.recipient: m for m in db.session.scalars(select(OutboxMessage))}


def time_passes(minutes: int) -> None:
    """The controlled clock: every retry's backoff (and age) moves `minutes` into the past."""
    db.session.execute(update(Job).where(Job.status == JobStatus.QUEUED)
                       .values(run_at=utcnow()))
    for row in db.session.scalars(select(OutboxMessage)):
        row.created_at -= timedelta(minutes=minutes)
    db.session.commit()


def test_mail_queued_while_the_server_refuses_is_delivered_after_each_once(app, moody,
                                                                           run_jobs):
    people = [f"person{n}@example.com" for n in range(5)]
    for person in people:
        send_mail(person, "Your request", "ticket_links", links=[], link_days=1)
    db.session.commit()
    run_jobs()
    rows = outbox()
    assert {r.status for r in rows.values()} == {MailStatus.RETRYING}
    assert all("451" in r.last_error for r in rows.values())
    assert moody.received == []
    for _ in range(3):  # an hour of refusals: retried with backoff, nothing lost
        time_passes(20)
        run_jobs()
    assert {r.status for r in outbox().values()} == {MailStatus.RETRYING}
    moody.down = False
    time_passes(20)
    run_jobs()
    rows = outbox()
    assert {r.status for r in rows.values()} == {MailStatus.SENT}
    assert sorted(rcpt for rcpt, _ in moody.received) == people  # each exactly once
    time_passes(60)
    run_jobs()
    assert len(moody.received) == len(people)
    message_ids = {r.message_id for r in rows.values()}
    assert all(any(mid.encode() in raw for mid in message_ids) for _, raw in moody.received)


def test_a_refused_or_malformed_recipient_fails_alone_with_the_reason(app, moody, run_jobs):
    moody.down = False
    send_mail(["ok@example.com", "gone@example.com", "not an address"], "Hello",
              "ticket_links", links=[], link_days=1)
    db.session.commit()
    run_jobs()
    rows = outbox()
    assert rows["ok@example.com"].status == MailStatus.SENT
    assert rows["gone@example.com"].status == MailStatus.FAILED
    assert "550 5.1.1 Mailbox unavailable" in rows["gone@example.com"].last_error
    assert rows["not an address"].status == MailStatus.FAILED
    assert "malformed address" in rows["not an address"].last_error
    assert [rcpt for rcpt, _ in moody.received] == ["ok@example.com"]


def test_mail_that_keeps_failing_for_a_day_fails_with_its_last_reason(app, moody, run_jobs):
    send_mail("late@example.com", "Hello", "ticket_links", links=[], link_days=1)
    db.session.commit()
    run_jobs()
    time_passes(25 * 60)
    run_jobs()
    row = outbox()["late@example.com"]
    assert row.status == MailStatus.FAILED and "451" in row.last_error
    assert "still failing after 1 day" in row.last_error


def test_agents_see_undelivered_notifications_and_admins_retry_them(
        app, moody, run_jobs, client, auth, make_user, customer):
    from portal.tickets import notify, services
    from portal.tickets.models import TicketType

    agent = make_user("agent", email="agent@example.com")
    admin = make_user("admin", email="boss@example.com")
    moody.down = False
    moody.unknown.add(customer.email)
    ticket, _ = services.create_ticket(services.NewTicket(
        subject="Printer smokes", description="Help", type=TicketType.INCIDENT,
        name=customer.name, email=customer.email, requester=customer, ccs=[]))
    notify.notify_ticket_created(ticket)
    db.session.commit()
    run_jobs()
    auth.login(agent.email)
    page = client.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True)
    assert f"Not delivered to {customer.email}: 550 5.1.1 Mailbox unavailable" in page
    auth.logout()
    auth.login(admin.email)
    listing = client.get("/admin/mail/").get_data(as_text=True)
    assert customer.email in listing and "550 5.1.1" in listing
    moody.unknown.discard(customer.email)
    row = outbox()[customer.email]
    assert client.post(f"/admin/mail/{row.id}/retry").status_code == 303
    run_jobs()
    assert outbox()[customer.email].status == MailStatus.SENT
    assert client.post(f"/admin/mail/{row.id}/retry").status_code == 404  # nothing to retry


def test_a_rolled_back_change_sends_nothing(app, moody, run_jobs):
    moody.down = False
    send_mail("never@example.com", "Hello", "ticket_links", links=[], link_days=1)
    db.session.rollback()
    run_jobs()
    assert outbox() == {} and moody.received == []


def test_every_email_says_it_is_automatic(app, moody, run_jobs):
    moody.down = False
    send_mail("auto@example.com", "Hello", "ticket_links", links=[], link_days=1)
    db.session.commit()
    run_jobs()
    [(_rcpt, raw)] = moody.received
    assert b"Auto-Submitted: auto-generated" in raw
