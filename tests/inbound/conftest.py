"""Inbound mail helpers: corpus messages, delivery through the real store-then-process path,
and the emails the portal queued (read from the outbox as they would be sent)."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.inbound import services
from portal.inbound.models import InboundMessage
from portal.mail.models import OutboxMessage

CORPUS = Path(__file__).resolve().parent / "corpus"


def corpus(name: str, **fill: str) -> bytes:
    raw = (CORPUS / name).read_bytes()
    for key, value in fill.items():
        raw = raw.replace(b"{{" + key.encode() + b"}}", value.encode())
    return raw


@pytest.fixture
def deliver(app, run_jobs):
    """Store a raw message as `mail receive` does, run the jobs, return the fresh row."""

    def go(raw: bytes | EmailMessage, source: str = "pipe") -> InboundMessage:
        if isinstance(raw, EmailMessage):
            raw = raw.as_bytes(policy=policy.SMTP)
        row_id = services.receive(raw, source).id
        run_jobs()
        db.session.expire_all()
        return db.session.get(InboundMessage, row_id)

    return go


@pytest.fixture
def outbox(app):
    """Parsed outgoing emails (optionally to one address), oldest first."""

    def read(to: str | None = None) -> list[EmailMessage]:
        db.session.expire_all()
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if to:
            stmt = stmt.where(OutboxMessage.recipient == to)
        return [email.message_from_bytes(row.raw, policy=policy.default)
                for row in db.session.scalars(stmt)]

    return read


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def reply(to: str, sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="client.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg
