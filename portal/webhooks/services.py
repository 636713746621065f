"""Webhook endpoints and deliveries: what admins do, and one delivery attempt.

Retries follow the Standard Webhooks example schedule (about three days); an endpoint that
has failed for five days, or answers 410 Gone, is disabled and the admins are emailed.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.auth.models import Role, User
from portal.db import utcnow
from portal.extensions import db
from portal.jobs import enqueue
from portal.webhooks import outbound, signing, slack
from portal.webhooks.events import DELIVER_JOB, create_delivery
from portal.webhooks.models import (
    EVENTS,
    DeliveryStatus,
    EndpointKind,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)

# Delay before each retry: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (~3.1 days).
RETRY_DELAYS = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
                timedelta(hours=14), timedelta(hours=20), timedelta(hours=24)]
DISABLE_AFTER = timedelta(days=5)
ROTATION_OVERLAP = timedelta(hours=24)
MAX_RETRY_AFTER = timedelta(hours=1)


class EndpointError(ValueError):
    """A refused endpoint setting; the message is shown as is, beside `field`."""

    def __init__(self, message: str, field: str = "url") -> None:
        super().__init__(message)
        self.field = field


# --- endpoints -------------------------------------------------------------------------------

def _clean_events(events: list[str]) -> str:
    unknown = set(events) - set(EVENTS)
    if unknown:
        raise EndpointError(f"Unknown event: {', '.join(sorted(unknown))}.", "events")
    if not events:
        raise EndpointError("Choose at least one event.", "events")
    return " ".join(sorted(set(events)))


def create_endpoint(url: str, events: list[str], description: str = "",
                    kind: str = EndpointKind.STANDARD) -> WebhookEndpoint:
    try:
        outbound.check_url(url)
    except outbound.Refused as exc:
        raise EndpointError(str(exc)) from None
    endpoint = WebhookEndpoint(url=url.strip(), kind=EndpointKind(kind).value,
                               description=description.strip()[:200],
                               events=_clean_events(events), secret=signing.new_secret(),
                               enabled=True, created_at=utcnow(), updated_at=utcnow())
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def update_endpoint(endpoint: WebhookEndpoint, *, url: str | None = None,
                    events: list[str] | None = None, description: str | None = None,
                    enabled: bool | None = None) -> None:
    if url is not None and url.strip() != endpoint.url:
        try:
            outbound.check_url(url)
        except outbound.Refused as exc:
            raise EndpointError(str(exc)) from None
        endpoint.url = url.strip()
    if events is not None:
        endpoint.events = _clean_events(events)
    if description is not None:
        endpoint.description = description.strip()[:200]
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.disabled_reason = None if enabled else "Disabled by an admin."
        endpoint.failing_since = None
    endpoint.updated_at = utcnow()


def rotate_secret(endpoint: WebhookEndpoint) -> None:
    """A new secret signs from now on; the old one signs too for 24 hours."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = utcnow() + ROTATION_OVERLAP
    endpoint.secret = signing.new_secret()
    endpoint.updated_at = utcnow()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    keys = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and \
            endpoint.previous_secret_until > now:
        keys.append(endpoint.previous_secret)
    return keys


def endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def deliveries(endpoint: WebhookEndpoint, status: str | None = None,
               limit: int = 50) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return list(db.session.scalars(
        stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)))


def send_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    return create_delivery(db.session(), endpoint, "webhook.test",
                           {"endpoint_id": endpoint.id, "message": "A test event from the portal."})


def resend(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same event again (same webhook-id, so receivers can de-duplicate)."""
    return create_delivery(db.session(), delivery.endpoint, delivery.event_type,
                           json.loads(delivery.payload)["data"], message_id=delivery.message_id)


def replay_failed(endpoint: WebhookEndpoint, since: datetime) -> int:
    failed = db.session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id,
        WebhookDelivery.status == DeliveryStatus.FAILED,
        WebhookDelivery.created_at >= since))
    count = 0
    for delivery in list(failed):
        resend(delivery)
        count += 1
    return count


# --- one attempt -----------------------------------------------------------------------------

def _request(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[bytes, dict]:
    if endpoint.kind == EndpointKind.SLACK:
        body = json.dumps(slack.message(json.loads(delivery.payload))).encode()
        return body, {"Content-Type": "application/json"}
    body = delivery.payload.encode()
    timestamp = int(time.time())
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "SupportPortal-Webhooks/1",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            signing_secrets(endpoint, utcnow()), delivery.message_id, timestamp, body),
    }


def attempt(delivery_id: int) -> None:
    """Send a pending delivery once and record the outcome (job handler).

    No transaction is held during the HTTP call (SQLite: it would hold the write lock).
    """
    session = db.session
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        delivery.status = DeliveryStatus.FAILED
        delivery.finished_at = utcnow()
        return
    url = endpoint.url
    body, headers = _request(endpoint, delivery)
    session.commit()
    result = outbound.post(url, body, headers)
    delivery = session.get(WebhookDelivery, delivery_id)
    endpoint = delivery.endpoint
    now = utcnow()
    delivery.attempts += 1
    delivery.last_status_code = result.status
    session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=now,
                               status_code=result.status, latency_ms=result.latency_ms,
                               response_excerpt=result.excerpt, error=result.error))
    if result.status is not None and 200 <= result.status < 300:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.finished_at = now
        delivery.next_attempt_at = None
        endpoint.failing_since = None
        return
    endpoint.failing_since = endpoint.failing_since or now
    if result.status == 410:
        _give_up(delivery, now)
        disable(endpoint, "The receiver answered 410 Gone.")
    elif now - endpoint.failing_since >= DISABLE_AFTER:
        _give_up(delivery, now)
        disable(endpoint, "Every delivery failed for five days.")
    elif delivery.attempts > len(RETRY_DELAYS):
        _give_up(delivery, now)
    else:
        delay = RETRY_DELAYS[delivery.attempts - 1]
        if result.status in (429, 503) and (wanted := _retry_after(result.retry_after)):
            delay = max(delay, min(wanted, MAX_RETRY_AFTER))
        delivery.next_attempt_at = now + delay
        enqueue(DELIVER_JOB, {"delivery_id": delivery.id}, run_at=delivery.next_attempt_at)


def _retry_after(value: str | None) -> timedelta | None:
    return timedelta(seconds=int(value)) if value and value.strip().isdigit() else None


def _give_up(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.status = DeliveryStatus.FAILED
    delivery.finished_at = now
    delivery.next_attempt_at = None


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to the endpoint and tell every admin why."""
    from portal.mail import absolute_url, send_mail

    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = utcnow()
    for pending in db.session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == DeliveryStatus.PENDING)):
        _give_up(pending, utcnow())
    admins = db.session.scalars(select(User.email).where(User.role == Role.ADMIN,
                                                         User.active.is_(True))).all()
    if admins:
        send_mail(list(admins), "A webhook endpoint was disabled", "webhook_disabled",
                  endpoint=endpoint, reason=reason,
                  link=absolute_url("webhooks.endpoint", endpoint_id=endpoint.id))
    log.warning("Webhook endpoint %s disabled: %s", endpoint.id, reason)
