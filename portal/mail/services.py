"""The outbox: queue a message with its send job; deliver it; what failed and retrying it."""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db import utcnow
from portal.extensions import db
from portal.jobs import enqueue
from portal.mail.models import MailStatus, OutboxMessage

log = logging.getLogger("portal.mail")

SEND_JOB = "mail.send"


class PermanentMailError(Exception):
    """The server refused this recipient or message for good (5xx), or the address is bad."""


def queue_message(msg: EmailMessage, template: str, *, recipient: str | None = None,
                  ticket_id: int | None = None, session: Session | None = None) -> OutboxMessage:
    """Queue `msg` for one recipient (its To header unless given) with its send job."""
    session = session or db.session
    row = OutboxMessage(
        message_id=msg["Message-ID"], recipient=recipient or str(msg["To"]),
        subject=str(msg["Subject"]),
        template=template, raw=msg.as_bytes(policy=policy.SMTP), ticket_id=ticket_id,
        status=MailStatus.QUEUED, attempts=0, created_at=utcnow(),
    )
    session.add(row)
    enqueue(SEND_JOB, {"message_id": row.message_id}, session=session)
    return row


def retry_period() -> timedelta:
    return timedelta(hours=float(current_app.config["MAIL_RETRY_HOURS"]))


def send_outbox_message(message_id: str) -> None:
    """Deliver one queued message (the job). Raises to be retried while that may help."""
    session = db.session
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == message_id))
    if row is None or row.status in (MailStatus.SENT, MailStatus.FAILED):
        return  # already handled: a job run twice sends once where it can
    row.attempts += 1
    row.last_attempt_at = utcnow()
    recipient, raw = row.recipient, row.raw
    session.commit()  # never hold the database (SQLite's write lock) across an SMTP exchange
    try:
        _check_address(recipient)
        deliver(recipient, raw)
    except PermanentMailError as exc:
        _fail(row, str(exc))
        return
    except (OSError, smtplib.SMTPException) as exc:
        reason = _reason(exc)
        if utcnow() - row.created_at >= retry_period():
            _fail(row, f"still failing after {retry_period()}: {reason}")
            return
        row.status = MailStatus.RETRYING
        row.last_error = reason
        session.commit()  # keep the status even though the job is retried
        log.warning("Mail to %s (%s) failed, will retry: %s", row.recipient, row.subject,
                    reason)
        raise
    row.status = MailStatus.SENT
    row.sent_at = utcnow()
    row.last_error = None


def _fail(row: OutboxMessage, reason: str) -> None:
    row.status = MailStatus.FAILED
    row.last_error = reason[:1000]
    log.error("Mail to %s (%s) failed: %s", row.recipient, row.subject, reason)


def _check_address(address: str) -> None:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise PermanentMailError(f"malformed address: {exc}") from exc


def _reason(exc: BaseException) -> str:
    """A readable SMTP reason, never the credentials."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"{exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {msg.decode(errors='replace')}"
                         for code, msg in exc.recipients.values())
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def deliver(recipient: str, raw: bytes) -> None:
    cfg = current_app.config
    if not cfg["MAIL_SERVER"]:
        folder = Path(cfg["MAIL_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.eml"
        path.write_bytes(raw)
        log.info("Mail to %s written to %s", recipient, path)
        return
    smtp_class = smtplib.SMTP_SSL if cfg["MAIL_USE_SSL"] else smtplib.SMTP
    with smtp_class(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=10) as smtp:
        if cfg["MAIL_USE_TLS"]:
            smtp.starttls(context=ssl.create_default_context())
        if cfg["MAIL_USERNAME"]:
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
        sender = _envelope_sender(cfg["MAIL_SENDER"])
        try:
            refused = smtp.sendmail(sender, [recipient], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0]
            if code >= 500:
                raise PermanentMailError(_reason(exc)) from exc
            raise
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPServerDisconnected):
                raise PermanentMailError(_reason(exc)) from exc
            raise
        if refused:
            raise PermanentMailError("; ".join(str(v) for v in refused.values()))
    log.info("Mail to %s sent", recipient)


def _envelope_sender(header: str) -> str:
    from email.utils import parseaddr

    return parseaddr(header)[1] or header


def failed_for_ticket(ticket_id: int) -> list[OutboxMessage]:
    """Notifications of this ticket that could not be delivered (shown to agents)."""
    return list(db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.ticket_id == ticket_id,
            OutboxMessage.status.in_([MailStatus.FAILED, MailStatus.RETRYING]),
        ).order_by(OutboxMessage.created_at)
    ))


def undelivered(limit: int = 200) -> list[OutboxMessage]:
    return list(db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.status.in_([MailStatus.FAILED, MailStatus.RETRYING])
        ).order_by(OutboxMessage.created_at.desc()).limit(limit)
    ))


def retry_now(row: OutboxMessage) -> None:
    """Send again from now on, with a fresh retry period."""
    row.status = MailStatus.QUEUED
    row.created_at = utcnow()
    row.last_error = None
    enqueue(SEND_JOB, {"message_id": row.message_id})
