"""Inbound mail: every message as received (raw bytes first), and addresses that bounce."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class InboundStatus(enum.StrEnum):
    PENDING = "pending"  # stored, waiting for its processing job
    PROCESSED = "processed"  # made or added to a ticket
    IGNORED = "ignored"  # auto-reply, bounce, list mail: never a ticket, never an email
    HELD = "held"  # waits for an admin (sender over its limit, DMARC failed)
    FAILED = "failed"  # could not be processed; the reason says why


class InboundMessage(Base):
    """One received message. The raw bytes are written before anything reads them, so a
    parser or handler failure loses nothing and the message can be processed again."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_status_received", "status", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of Message-ID + body: the same message delivered twice is stored once.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(255), index=True, default="")
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(400), default="")
    source: Mapped[str] = mapped_column(String(20))  # pipe | smtp | imap
    size: Mapped[int] = mapped_column(default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=InboundStatus.PENDING)
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    # The ticket message it became: agents open the full email from there.
    ticket_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)


class BouncingAddress(Base):
    """A recipient whose mail for this ticket bounced: no more mail to it for the ticket
    until an agent clears it."""

    __tablename__ = "ticket_bounces"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
