"""Inbound mail: store the raw message first, then (in a job) turn it into a ticket or a
reply, or set it aside with a reason an admin can read.

Order of evidence for a reply (strongest first): our signed reply address, then one of our
signed Message-IDs in In-Reply-To/References, then `[TKT-n]` in the subject. A message joins
an existing ticket only when its sender takes part in it; anything else starts a new ticket.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr

import filetype
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from portal.auth.models import User
from portal.auth.services import find_user
from portal.db import utcnow
from portal.extensions import db
from portal.inbound import parsing, tokens
from portal.inbound.models import BouncingAddress, InboundMessage, InboundStatus
from portal.jobs import enqueue
from portal.mail import one_line
from portal.mail.models import OutboxMessage
from portal.tickets.access import Viewer
from portal.tickets.attachments import AttachmentError, detect, remove_files
from portal.tickets.links import normalize, ticket_emails
from portal.tickets.models import (
    Attachment,
    Channel,
    Message,
    Setting,
    Status,
    Ticket,
    TicketType,
)

log = logging.getLogger(__name__)

PROCESS_JOB = "inbound.process"
_SUBJECT_REFERENCE = re.compile(r"\[(TKT-\d{1,12})\]", re.I)
_EXECUTABLE_MAGIC = (b"MZ", b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"#!")


class StoreError(Exception):
    """The message could not be stored (the caller answers "try again later")."""


# --- storing ---------------------------------------------------------------------------------


def store_raw(raw: bytes, source: str) -> tuple[InboundMessage, bool]:
    """Keep the raw bytes and queue their processing, in the caller's transaction.

    Returns (row, created). The same message delivered twice (same Message-ID and body)
    returns the first row and queues nothing.
    """
    head, body = parsing.split_head(raw)
    message_id = parsing.header(head, "Message-ID")[:255]
    fingerprint = hashlib.sha256(message_id.encode() + b"\0" + body).hexdigest()
    existing = db.session.scalar(
        select(InboundMessage).where(InboundMessage.fingerprint == fingerprint)
    )
    if existing is not None:
        return existing, False
    who = parsing.sender(head)
    row = InboundMessage(
        fingerprint=fingerprint, message_id=message_id, sender=who[1] if who else "",
        subject=parsing.header(head, "Subject")[:400], source=source, size=len(raw), raw=raw,
        status=InboundStatus.PENDING, reason="", received_at=utcnow(),
    )
    limit = current_app.config["MAIL_MAX_BYTES"]
    if len(raw) > limit:
        row.status = InboundStatus.FAILED
        row.reason = f"larger than the {limit // (1024 * 1024)} MB limit; not processed"
    db.session.add(row)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:  # the same message stored at this moment by another delivery
        return db.session.scalar(
            select(InboundMessage).where(InboundMessage.fingerprint == fingerprint)
        ), False
    if row.status == InboundStatus.PENDING:
        enqueue(PROCESS_JOB, {"id": row.id})
    return row, True


def receive(raw: bytes, source: str) -> InboundMessage:
    """Store one message and commit; raise StoreError when it could not be stored."""
    try:
        row, _created = store_raw(raw, source)
        db.session.commit()
        return row
    except Exception as exc:
        db.session.rollback()
        raise StoreError(f"{exc.__class__.__name__}: {exc}") from exc


def reprocess(row: InboundMessage) -> None:
    """Process a message again (an admin's decision: holds no longer apply)."""
    row.status = InboundStatus.PENDING
    row.reason = "queued again by an admin"
    enqueue(PROCESS_JOB, {"id": row.id, "release": True})


# --- processing ------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: InboundStatus
    reason: str
    ticket: Ticket | None = None


def process(row_id: int, release: bool = False) -> None:
    """The job: decide what this message is and act on it; on any failure mark it failed
    with the reason and keep its bytes (never retried blindly: an admin can reprocess)."""
    row = db.session.get(InboundMessage, row_id)
    if row is None or row.status != InboundStatus.PENDING:
        return  # done already: a job that runs twice acts once
    written: list[Attachment] = []
    try:
        outcome = _process(row, release, written)
        db.session.flush()
    except Exception as exc:
        db.session.rollback()
        remove_files(written)
        log.exception("Inbound message %s failed", row_id)
        row = db.session.get(InboundMessage, row_id)
        outcome = Outcome(InboundStatus.FAILED, f"{exc.__class__.__name__}: {exc}"[:1000])
    row.status = outcome.status
    row.reason = outcome.reason
    row.ticket_id = outcome.ticket.id if outcome.ticket is not None else row.ticket_id
    row.processed_at = utcnow()
    log.info("Inbound message %s from %s: %s (%s)", row.id, row.sender, row.status, row.reason)


def _process(row: InboundMessage, release: bool, written: list[Attachment]) -> Outcome:
    cfg = current_app.config
    msg = parsing.read(row.raw)
    if parsing.is_bounce(msg):
        return _bounce(msg, row.raw.decode("latin-1"))
    automatic = parsing.automatic_reason(msg)
    if automatic:
        return Outcome(InboundStatus.IGNORED, automatic)
    who = parsing.sender(msg)
    if who is None:
        return Outcome(InboundStatus.FAILED, "no usable sender address (From)")
    name, sender = who
    if tokens.is_support_address(sender) or sender == normalize(parseaddr(cfg["MAIL_SENDER"])[1]):
        return Outcome(InboundStatus.IGNORED, "sent from our own address (a loop)")
    if not release and parsing.dmarc_failed(msg, cfg["MAIL_TRUSTED_AUTHSERV_ID"]):
        return Outcome(InboundStatus.HELD, "DMARC failed at our mail server: possible spoofing")
    content = parsing.extract(msg)
    files, refused = _screen_attachments(content.attachments)
    ticket, evidence = find_ticket(msg, sender)
    while ticket is not None and ticket.merged_into_id is not None:
        ticket = db.session.get(Ticket, ticket.merged_into_id)
    user = find_user(sender)
    if ticket is not None and ticket.status != Status.CLOSED:
        body = _with_refusals(content.reply or content.text, refused)
        row.ticket_id = ticket.id  # this message is part of the thread its replies refer to
        message = _add_reply(ticket, user, name, sender, body, files, written)
        row.ticket_message_id = message.id
        return Outcome(InboundStatus.PROCESSED, f"reply ({evidence})", ticket)
    if not release and _over_sender_limit(sender):
        return Outcome(
            InboundStatus.HELD,
            f"{sender} opened {cfg['MAIL_SENDER_LIMIT_PER_HOUR']} tickets by email in the "
            "last hour",
        )
    subject = parsing.header(msg, "Subject")
    forwarded = subject.lower().startswith(("fw:", "fwd:"))
    body = _with_refusals(content.text if forwarded else (content.reply or content.text),
                          refused)
    ccs = [] if not add_ccs() else [
        address for _name, address in parsing.addresses(msg, "To", "Cc")
        if address != sender and not tokens.is_support_address(address)
    ]
    new = _open_ticket(row, user, name, sender, subject, body, ccs, files,
                       follow_up_of=ticket, written=written)
    reason = "new ticket" if ticket is None else f"follow-up to closed {ticket.reference}"
    return Outcome(InboundStatus.PROCESSED, reason, new)


def find_ticket(msg, sender: str) -> tuple[Ticket | None, str]:
    """The ticket this message answers, and which evidence said so, when the sender may
    add to it. Agents need signed evidence: a subject alone never lets anyone post as staff."""
    recipients = [a for _n, a in parsing.addresses(
        msg, "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")]
    candidates = [
        (tokens.ticket_from_reply_address(recipients, sender), "signed reply address", True),
        (tokens.ticket_from_message_ids(
            parsing.message_ids(parsing.header(msg, "References"))
            + parsing.message_ids(parsing.header(msg, "In-Reply-To"))),
         "signed Message-ID in In-Reply-To/References", True),
        (_ticket_in_subject(parsing.header(msg, "Subject")), "reference in the subject", False),
    ]
    for ticket_id, evidence, signed in candidates:
        ticket = db.session.get(Ticket, ticket_id) if ticket_id else None
        if ticket is not None and is_participant(ticket, sender, signed=signed):
            return ticket, evidence
    return None, ""


def _ticket_in_subject(subject: str) -> int | None:
    match = _SUBJECT_REFERENCE.search(subject)
    return Ticket.id_from_reference(match.group(1)) if match else None


def is_participant(ticket: Ticket, sender: str, *, signed: bool) -> bool:
    if normalize(sender) in ticket_emails(ticket):
        return True
    user = find_user(sender)
    return bool(signed and user is not None and user.is_agent and user.active)


def _add_reply(ticket: Ticket, user: User | None, name: str, sender: str, body: str,
               files: list[FileStorage], written: list[Attachment]) -> Message:
    from portal.agent import services as agent_services
    from portal.tickets import notify, services

    if user is not None and user.is_agent and normalize(sender) not in ticket_emails(ticket):
        message = agent_services.reply(ticket, user, body or "(no text)", internal=False,
                                       files=files)
        message.channel = Channel.EMAIL
        written.extend(message.attachments)
        return message
    viewer = Viewer(user=user, email=normalize(sender), name=_display_name(user, name, sender))
    message, saved, _created = services.add_customer_reply(
        ticket, viewer, body or "(no text)", files, channel=Channel.EMAIL
    )
    written.extend(saved)
    notify.notify_public_reply(ticket, message, author_email=sender)
    return message


def _open_ticket(row, user, name, sender, subject, body, ccs, files, *, follow_up_of,
                 written) -> Ticket:
    from portal.tickets import notify, services

    data = services.NewTicket(
        subject=(one_line(subject) or "(no subject)")[:200],
        description=body or "(no text)",
        type=TicketType.QUESTION,
        name=_display_name(user, name, sender),
        email=sender,
        requester=user,
        ccs=sorted(set(ccs)),
        files=files,
        follow_up_of=follow_up_of,
        channel=Channel.EMAIL,
    )
    ticket, saved = services.create_ticket(data)
    written.extend(saved)
    row.ticket_message_id = ticket.messages[0].id
    row.ticket_id = ticket.id  # the thread the confirmation refers to starts with this message
    db.session.flush()
    notify.notify_ticket_created(ticket, suggestions=suggested_articles(ticket, user, body))
    return ticket


def suggested_articles(ticket: Ticket, user: User | None, body: str) -> list[tuple[str, str]]:
    """Up to three (title, absolute URL) knowledge-base articles that may answer the
    request: the web form's suggestions, by email."""
    from portal.tickets import suggestions

    base = current_app.config["BASE_URL"].rstrip("/")
    _query, hits = suggestions.suggestions_for(user, ticket.subject, body)  # in the job's request
    return [(hit.title, base + hit.url) for hit in hits[:3]]


def _display_name(user: User | None, name: str, sender: str) -> str:
    if user is not None:
        return user.name
    return (one_line(name) or sender.split("@", 1)[0])[:120]


def _over_sender_limit(sender: str) -> bool:
    since = utcnow() - timedelta(hours=1)
    count = db.session.scalar(select(func.count(Ticket.id)).where(
        Ticket.requester_email == normalize(sender), Ticket.channel == Channel.EMAIL,
        Ticket.created_at >= since,
    )) or 0
    return count >= int(current_app.config["MAIL_SENDER_LIMIT_PER_HOUR"])


# --- attachments -----------------------------------------------------------------------------


def _screen_attachments(parts: list[parsing.Part]) -> tuple[list[FileStorage],
                                                                 list[tuple[str, str]]]:
    """Each file on its own through the web upload checks: the good ones are kept, the
    others listed with the reason (a mail cannot be sent back and fixed like a form)."""
    cfg = current_app.config
    accepted, refused = [], []
    for part in parts:
        name = part.filename
        if len(part.data) > cfg["MAX_UPLOAD_BYTES"]:
            refused.append((name, f"larger than {cfg['MAX_UPLOAD_MB']} MB"))
            continue
        try:
            detect(name, part.data)
        except AttachmentError:
            refused.append((name, _refusal(name, part.data)))
            continue
        if len(accepted) >= cfg["MAX_ATTACHMENTS"]:
            refused.append((name, f"more than {cfg['MAX_ATTACHMENTS']} files"))
            continue
        accepted.append(FileStorage(io.BytesIO(part.data), filename=name,
                                    content_type=part.content_type))
    return accepted, refused


def _refusal(name: str, data: bytes) -> str:
    if not data:
        return "empty"
    if data.startswith(_EXECUTABLE_MAGIC):
        return "executable"
    guess = filetype.guess(data)
    if guess is not None and name.lower().rsplit(".", 1)[-1] != guess.extension:
        return f"content ({guess.mime}) does not match its name"
    return "file type not accepted"


def _with_refusals(body: str, refused: list[tuple[str, str]]) -> str:
    if not refused:
        return body
    listed = "; ".join(f"{name}, {reason}" for name, reason in refused)
    return f"{body}\n\n[Attachments not accepted: {listed}]"


# --- bounces ---------------------------------------------------------------------------------


def _bounce(msg, text: str) -> Outcome:
    """A delivery failure for one of our emails marks that recipient as bouncing on the
    email's ticket. Never a ticket, never an answer."""
    for message_id in tokens.signed_message_ids_in(text):
        sent = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.message_id == message_id)
        )
        if sent is None or sent.ticket_id is None:
            continue
        if not _permanent_failure(msg):
            return Outcome(InboundStatus.IGNORED, f"delay notice for {sent.recipient}")
        mark_bouncing(sent.ticket_id, sent.recipient, parsing.header(msg, "Subject")[:200])
        ticket = db.session.get(Ticket, sent.ticket_id)
        return Outcome(InboundStatus.IGNORED,
                       f"bounce: {sent.recipient} marked as bouncing", ticket)
    return Outcome(InboundStatus.IGNORED, "bounce or delivery report for no ticket email")


def _permanent_failure(msg) -> bool:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            text = str(part)
            return bool(re.search(r"^Action:\s*failed", text, re.I | re.M))
    return True  # a non-standard bounce (plain text from a MAILER-DAEMON) is a failure


def mark_bouncing(ticket_id: int, email: str, reason: str) -> None:
    email = normalize(email)
    exists = db.session.scalar(select(BouncingAddress).where(
        BouncingAddress.ticket_id == ticket_id, BouncingAddress.email == email))
    if exists is None:
        db.session.add(BouncingAddress(ticket_id=ticket_id, email=email, reason=reason,
                                       created_at=utcnow()))


def bouncing_addresses(ticket_id: int) -> set[str]:
    return set(db.session.scalars(
        select(BouncingAddress.email).where(BouncingAddress.ticket_id == ticket_id)))


def bounces_for(ticket_id: int) -> list[BouncingAddress]:
    return list(db.session.scalars(
        select(BouncingAddress).where(BouncingAddress.ticket_id == ticket_id)
        .order_by(BouncingAddress.email)))


def emails_of(ticket: Ticket) -> dict[int, int]:
    """{ticket message id: inbound message id} for the messages of a ticket that came by
    email (the agent's "show the full email" links). Such messages are on the email channel:
    a thread with none (its messages are loaded with the page) needs no statement."""
    if not any(message.channel == Channel.EMAIL for message in ticket.messages):
        return {}
    rows = db.session.execute(
        select(InboundMessage.ticket_message_id, InboundMessage.id)
        .where(InboundMessage.ticket_id == ticket.id,
               InboundMessage.ticket_message_id.is_not(None)))
    return {row[0]: row[1] for row in rows}


def bouncing_list(limit: int = 200) -> list[BouncingAddress]:
    return list(db.session.scalars(
        select(BouncingAddress).order_by(BouncingAddress.created_at.desc()).limit(limit)))


# --- admin ------------------------------------------------------------------------------------

ADD_CCS_KEY = "inbound_add_ccs"


def add_ccs() -> bool:
    """Whether a new email's CC addresses become ticket CCs: the admin's choice, else
    MAIL_ADD_CCS."""
    setting = db.session.get(Setting, ADD_CCS_KEY)
    return setting.value == "1" if setting else bool(current_app.config["MAIL_ADD_CCS"])


def set_add_ccs(enabled: bool) -> None:
    setting = db.session.get(Setting, ADD_CCS_KEY) or Setting(key=ADD_CCS_KEY, value="")
    setting.value = "1" if enabled else "0"
    db.session.add(setting)


PAGE_SIZE = 50


def recent(status: str | None = None, limit: int = PAGE_SIZE) -> list[InboundMessage]:
    stmt = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if status in set(InboundStatus):
        stmt = stmt.where(InboundMessage.status == status)
    return list(db.session.scalars(stmt))


def counts() -> dict[str, int]:
    rows = db.session.execute(
        select(InboundMessage.status, func.count()).group_by(InboundMessage.status))
    return {row[0]: row[1] for row in rows}


def readable_original(row: InboundMessage, limit: int = 200_000) -> str:
    """The original as text for the admin view (escaped when shown; never rendered)."""
    text = row.raw[:limit].decode("utf-8", errors="replace")
    return parsing.clean_text(text) + ("\n[… cut]" if len(row.raw) > limit else "")


def readable_parts(row: InboundMessage) -> parsing.Content | None:
    try:
        return parsing.extract(parsing.read(row.raw))
    except Exception:
        return None
