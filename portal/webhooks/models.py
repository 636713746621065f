"""Webhook endpoints, one delivery per event and endpoint, and each attempt's result."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base, utcnow

EVENTS = {
    "ticket.created": "A ticket was created",
    "ticket.updated": "Status, priority, assignee, group, tags… changed (with what changed)",
    "ticket.replied": "A public reply (customer or agent)",
    "ticket.note_added": "An internal note (sent only to endpoints that opt in)",
    "ticket.solved": "A ticket was solved",
    "ticket.sla_breached": "A ticket breached its first-response or resolution target",
    "ticket.stale": "A ticket saw no activity for too long",
    "csat.rated": "A customer rated a solved ticket",
    "article.published": "A KB article was published",
    "surge.detected": "A surge of similar tickets was detected",
}
INTERNAL_EVENTS = {"ticket.note_added"}


class EndpointKind(enum.StrEnum):
    STANDARD = "standard"  # signed JSON (Standard Webhooks)
    SLACK = "slack"  # a Slack incoming webhook: readable text, the URL is the secret


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(20), default=EndpointKind.STANDARD)
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[str] = mapped_column(Text, default="")  # space separated
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret signs too, until `previous_secret_until`.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    # Set at the first failed delivery after a success; five days of failures disable it.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def event_set(self) -> set[str]:
        return set(self.events.split())


class WebhookDelivery(Base):
    """One event for one endpoint. `message_id` is the `webhook-id`: the same on every retry
    and resend, so receivers can drop duplicates."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_endpoint_created", "endpoint_id",
                            "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(40), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.id.desc()", cascade="all, delete-orphan")


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(String(300))
