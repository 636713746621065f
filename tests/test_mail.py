"""Mail: queued in the outbox, sent by a worker by SMTP when configured, files in development;
links from BASE_URL; no secrets logged."""

import logging
from pathlib import Path

from sqlalchemy import select

from portal.extensions import db
from portal.mail import absolute_url, send_mail
from portal.mail.models import MailStatus, OutboxMessage


def test_mail_password_never_reaches_the_log(app, smtp_server, caplog, run_jobs):
    controller, mailbox = smtp_server
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port,
                      MAIL_USERNAME="portal", MAIL_PASSWORD="s3cret-mail-pw")
    caplog.set_level(logging.DEBUG)
    with app.test_request_context():
        send_mail("someone@example.com", "Hello", "confirm_email", user=None, link="x")
    run_jobs()
    assert "Mail to someone@example.com (Hello) failed" in caplog.text  # the server has no AUTH
    assert "s3cret-mail-pw" not in caplog.text
    assert mailbox.received == []
    row = db.session.scalar(select(OutboxMessage))
    assert row.status == MailStatus.RETRYING and "s3cret" not in row.last_error


def test_mail_failure_does_not_lose_the_change(app, client, caplog, run_jobs):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=1)  # nothing listens there
    response = client.post("/auth/register", data={
        "name": "Pat", "email": "pat@example.com", "password": "ferry lantern",
        "confirm": "ferry lantern"})
    assert response.status_code == 303
    assert client.get("/account").status_code == 200
    run_jobs()
    assert "Mail to pat@example.com (Confirm your email address) failed" in caplog.text
    row = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == "pat@example.com"))
    assert row.status == MailStatus.RETRYING and "ConnectionRefused" in row.last_error


def test_development_mail_goes_to_files(app, client, caplog, run_jobs):
    caplog.set_level(logging.INFO, logger="portal.mail")
    client.post("/auth/register", data={"name": "Pat", "email": "pat@example.com",
                                        "password": "ferry lantern", "confirm": "ferry lantern"})
    assert not list(Path(app.config["MAIL_DIR"]).glob("*.eml"))  # queued, not yet sent
    run_jobs()
    [eml] = Path(app.config["MAIL_DIR"]).glob("*.eml")
    assert "To: pat@example.com" in eml.read_text()
    assert str(eml) in caplog.text


def test_emailed_links_use_the_public_base_url_even_without_a_request(app):
    app.config["BASE_URL"] = "https://help.example.com/"
    assert absolute_url("auth.reset", token="abc") == "https://help.example.com/auth/reset/abc"


def test_account_emails_have_an_html_part_with_the_same_link(client, customer, mailbox):
    client.post("/auth/reset", data={"email": customer.email})
    [message] = mailbox.wait_for(1)
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()
    link = next(w for w in mailbox.text(message).split() if "/auth/reset/" in w)
    assert f'href="{link}"' in body and "Choose a new password" in body
    assert "Casey Customer" in body and "<script" not in body
