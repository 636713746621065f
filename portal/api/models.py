"""Personal API tokens and the stored results of idempotent POSTs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.db import Base, utcnow
from portal.tickets.models import Ticket

SCOPES = {
    "tickets:read": "Read tickets, their messages and timeline",
    "tickets:write": "Create tickets, reply, add notes, change properties",
    "kb:read": "Read knowledge-base categories, sections and articles",
    "kb:write": "Create, edit and publish articles",
    "users:read": "Read users and organisations",
    "users:write": "Create customers (admins only, as in Admin → Users)",
    "webhooks:admin": "Manage webhook endpoints (admins only)",
}
# What a customer's token may do: their own tickets and the articles they may read.
CUSTOMER_SCOPES = ("tickets:read", "tickets:write", "kb:read")


class ApiToken(Base):
    """`hdp_<public_id>_<secret>`: the public part finds the row, only the secret's SHA-256
    is kept (the secret is 32 random bytes, so a fast hash is enough)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # space separated
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()

    @property
    def scope_set(self) -> set[str]:
        return set(self.scopes.split())

    def usable(self, now: datetime) -> bool:
        return (self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
                and self.user.active)


class IdempotencyRecord(Base):
    """The first response to a POST sent with an `Idempotency-Key`, replayed for 24 hours."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


# The API lists tickets by (updated_at, id), also within one status: keyset pagination needs
# these indexes to stay fast at 100k rows (bench/api.py).
Index("ix_tickets_updated_id", Ticket.updated_at, Ticket.id)
Index("ix_tickets_status_updated_id", Ticket.status, Ticket.updated_at, Ticket.id)
