"""The three ways in: `mail receive` as a subprocess (as an MTA runs it), `mail serve`
through a real SMTP session, and the admin pages."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.inbound.models import InboundMessage
from portal.inbound.smtp import start_listener

from .conftest import corpus

ROOT = Path(__file__).resolve().parents[2]


def stored() -> list[InboundMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def run_receive(app, raw: bytes, database_url: str | None = None) -> subprocess.CompletedProcess:
    db.session.commit()  # the subprocess must not wait for this test's SQLite write lock
    env = {
        **os.environ,
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_DATABASE_URL": database_url or app.config["DATABASE_URL"],
        "PORTAL_SECRET_KEY": app.config["SECRET_KEY"],
        "PORTAL_SEMANTIC_SEARCH": "false",
    }
    flask = Path(sys.executable).with_name("flask")
    return subprocess.run([str(flask), "--app", "app", "mail", "receive"], input=raw,
                          capture_output=True, cwd=ROOT, env=env, timeout=60, check=False)


def test_mail_receive_stores_and_exits_0(app):
    done = run_receive(app, corpus("gmail_new_request.eml"))
    assert done.returncode == 0, done.stderr
    (row,) = stored()
    assert row.status == "pending" and row.source == "pipe"
    assert row.raw == corpus("gmail_new_request.eml")
    again = run_receive(app, corpus("gmail_new_request.eml"))
    assert again.returncode == 0 and len(stored()) == 1  # redelivery stored once


def test_mail_receive_exits_75_when_it_cannot_store(app, tmp_path):
    nowhere = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}"
    done = run_receive(app, corpus("gmail_new_request.eml"), database_url=nowhere)
    assert done.returncode == 75 and b"not stored" in done.stderr
    empty = run_receive(app, b"")
    assert empty.returncode == 75 and stored() == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def listener(app):
    port = _free_port()
    controller = start_listener(app, "127.0.0.1", port)
    yield port
    controller.stop()


def test_mail_serve_answers_250_only_once_stored(app, listener):
    db.session.commit()
    raw = corpus("thunderbird_attachments.eml").replace(b"\n", b"\r\n")  # as on the wire
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
        code, _ = smtp.ehlo()
        assert code == 250
        assert smtp.mail("klaus.weber@posteo.de")[0] == 250
        assert smtp.rcpt("someone@elsewhere.example")[0] == 550  # not a relay
        assert smtp.rcpt("support+t42.0123456789abcdef@localhost")[0] == 250
        code, answer = smtp.data(raw)
    assert code == 250 and b"Stored as inbound message" in answer, answer
    (row,) = stored()  # stored before the 250, not after
    assert row.source == "smtp" and row.raw.replace(b"\r\n", b"\n") == corpus(
        "thunderbird_attachments.eml")


@pytest.mark.parametrize("app", [{"MAIL_MAX_MB": 0.002}], indirect=True)
def test_mail_serve_refuses_messages_over_the_size_limit(app, listener):
    db.session.commit()
    big = corpus("gmail_new_request.eml").replace(b"\n", b"\r\n") + (b"x" * 70 + b"\r\n") * 80
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # announced with SIZE
            smtp.sendmail("a@example.org", ["support@localhost"], big)
        assert refused.value.smtp_code == 552
        smtp.rset()
        assert smtp.mail("a@example.org")[0] == 250  # not announced: refused after DATA
        assert smtp.rcpt("support@localhost")[0] == 250
        assert smtp.data(big)[0] == 552
    assert stored() == []


def test_mail_serve_answers_4xx_when_it_cannot_store(app, listener):
    db.session.commit()
    app.config["MAIL_MAX_BYTES"] = "not a number"  # storing raises: nothing may be lost
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp, \
            pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail("a@example.org", ["support@localhost"],
                      corpus("gmail_new_request.eml").replace(b"\n", b"\r\n"))
    assert refused.value.smtp_code == 451


def test_admin_sees_the_original_as_text_and_can_reprocess(admin_client, deliver):
    shown = deliver(corpus("html_only.eml"))
    failed = deliver(corpus("garbage_no_sender.eml"))
    page = admin_client.get("/admin/inbound/").get_data(as_text=True)
    assert "Checkout page is blank" in page and "no usable sender" in page
    detail = admin_client.get(f"/admin/inbound/{shown.id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in detail
    assert "<script>alert" not in detail
    assert admin_client.get("/admin/inbound/?status=failed").get_data(as_text=True).count(
        "/admin/inbound/") >= 2
    response = admin_client.post(f"/admin/inbound/{failed.id}/reprocess")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(InboundMessage, failed.id).status == "pending"
    count = db.session.scalar(select(func.count()).select_from(InboundMessage))
    assert count == 2


def test_the_mail_serve_command_listens_until_stopped(app):
    db.session.commit()
    port = _free_port()
    env = {**os.environ, "PORTAL_INSTANCE_PATH": app.instance_path,
           "PORTAL_DATABASE_URL": app.config["DATABASE_URL"],
           "PORTAL_SECRET_KEY": app.config["SECRET_KEY"], "PORTAL_SEMANTIC_SEARCH": "false"}
    flask = Path(sys.executable).with_name("flask")
    server = subprocess.Popen(
        [str(flask), "--app", "app", "mail", "serve", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        with smtp:
            refused = smtp.sendmail("maria.lopez@gmail.com", ["support@localhost"],
                                    corpus("gmail_new_request.eml").replace(b"\n", b"\r\n"))
        assert refused == {}
        (row,) = stored()
        assert row.source == "smtp"
    finally:
        server.send_signal(signal.SIGTERM)  # as a service manager stops it
        try:
            server.wait(60)  # a loaded machine: CI shares its cores
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise


def test_a_whole_conversation_by_email(app, listener, mailbox):
    """In by SMTP, the confirmation out by SMTP, the customer's answer back in to its
    Reply-To: one ticket, two messages."""
    from email import message_from_bytes
    from email import policy as email_policy

    from portal.tickets.models import Ticket

    def send(sender: str, to: str, raw: bytes) -> None:
        db.session.commit()
        with smtplib.SMTP("127.0.0.1", listener, timeout=10) as smtp:
            smtp.sendmail(sender, [to], raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    send("maria.lopez@gmail.com", "support@localhost", corpus("gmail_new_request.eml"))
    mailbox.wait_for(1)
    (confirmation,) = mailbox.to("maria.lopez@gmail.com")
    confirmation = message_from_bytes(confirmation.as_bytes(), policy=email_policy.default)
    answer = (
        f"From: Maria Lopez <maria.lopez@gmail.com>\nTo: {confirmation['Reply-To']}\n"
        f"Subject: Re: {confirmation['Subject']}\nMessage-ID: <answer-1@mail.gmail.com>\n"
        f"In-Reply-To: {confirmation['Message-ID']}\n\nThe printer works again.\n\n"
        "> ##- Please type your reply above this line -##\n> Hello,\n"
    ).encode()
    send("maria.lopez@gmail.com", confirmation["Reply-To"], answer)
    deadline = time.monotonic() + 20
    with db.deferred():  # watching takes no write lock from the worker
        while True:
            db.session.expire_all()
            (ticket,) = db.session.scalars(select(Ticket)).all()
            bodies = [m.body for m in ticket.messages]
            db.session.rollback()
            if len(bodies) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert bodies[1] == "The printer works again."
