"""Webhook endpoints over the API: admins only, with the `webhooks:admin` scope."""

from __future__ import annotations

from datetime import UTC

from flask import url_for

from portal.api import schemas
from portal.api.core import Problem, blp, not_found, require, writes
from portal.api.representations import iso
from portal.extensions import db
from portal.webhooks import services
from portal.webhooks.models import WebhookDelivery, WebhookEndpoint

TAG = ["Webhooks"]


def endpoint_json(e: WebhookEndpoint) -> dict:
    return {"id": e.id, "url": e.url, "kind": e.kind, "description": e.description,
            "events": sorted(e.event_set), "enabled": e.enabled,
            "disabled_reason": e.disabled_reason,
            "secret": e.secret if e.kind == "standard" else "", "created_at": iso(e.created_at)}


def delivery_json(d: WebhookDelivery) -> dict:
    return {"id": d.id, "webhook_id": d.message_id, "event_type": d.event_type,
            "status": d.status, "attempts": d.attempts, "last_status_code": d.last_status_code,
            "created_at": iso(d.created_at), "next_attempt_at": iso(d.next_attempt_at)}


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    require("webhooks:admin", admin=True)
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise not_found("webhook endpoint")
    return endpoint


def _refused(exc: services.EndpointError) -> Problem:
    return Problem(422, str(exc), errors=[{"field": exc.field, "message": str(exc)}])


@blp.route("/webhooks", methods=["GET"])
@blp.doc(tags=TAG, summary="Webhook endpoints (admins)")
@blp.response(200, schemas.EndpointList)
def list_webhooks():
    require("webhooks:admin", admin=True)
    return {"data": [endpoint_json(e) for e in services.endpoints()]}


@blp.route("/webhooks", methods=["POST"])
@blp.doc(tags=TAG, summary="Add an endpoint (https, public address; SSRF-checked)")
@writes
@blp.arguments(schemas.EndpointCreate)
@blp.response(201, schemas.EndpointOut)
def create_webhook(data):
    require("webhooks:admin", admin=True)
    try:
        endpoint = services.create_endpoint(data["url"], data["events"], data["description"],
                                            data["kind"])
    except services.EndpointError as exc:
        raise _refused(exc) from None
    return endpoint_json(endpoint), 201, {
        "Location": url_for("api.get_webhook", endpoint_id=endpoint.id)}


@blp.route("/webhooks/<int:endpoint_id>", methods=["GET"])
@blp.doc(tags=TAG, summary="One endpoint")
@blp.response(200, schemas.EndpointOut)
def get_webhook(endpoint_id: int):
    return endpoint_json(_endpoint(endpoint_id))


@blp.route("/webhooks/<int:endpoint_id>", methods=["PATCH"])
@blp.doc(tags=TAG, summary="Change URL, events, description, or enable/disable")
@writes
@blp.arguments(schemas.EndpointUpdate)
@blp.response(200, schemas.EndpointOut)
def update_webhook(data, endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    try:
        services.update_endpoint(endpoint, **data)
    except services.EndpointError as exc:
        raise _refused(exc) from None
    return endpoint_json(endpoint)


@blp.route("/webhooks/<int:endpoint_id>", methods=["DELETE"])
@blp.doc(tags=TAG, summary="Delete an endpoint and its log")
@writes
@blp.response(204)
def delete_webhook(endpoint_id: int):
    db.session.delete(_endpoint(endpoint_id))
    return "", 204


@blp.route("/webhooks/<int:endpoint_id>/test", methods=["POST"])
@blp.doc(tags=TAG, summary="Send a webhook.test event")
@writes
@blp.response(202, schemas.DeliveryOut)
def test_webhook(endpoint_id: int):
    return delivery_json(services.send_test(_endpoint(endpoint_id))), 202


@blp.route("/webhooks/<int:endpoint_id>/rotate-secret", methods=["POST"])
@blp.doc(tags=TAG, summary="New secret; the old one also signs for 24 hours")
@writes
@blp.response(200, schemas.EndpointOut)
def rotate_webhook_secret(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    services.rotate_secret(endpoint)
    return endpoint_json(endpoint)


@blp.route("/webhooks/<int:endpoint_id>/deliveries", methods=["GET"])
@blp.doc(tags=TAG, summary="The delivery log, newest first (last 50)")
@blp.response(200, schemas.DeliveryList)
def list_deliveries(endpoint_id: int):
    return {"data": [delivery_json(d) for d in services.deliveries(_endpoint(endpoint_id))]}


@blp.route("/webhooks/<int:endpoint_id>/replay", methods=["POST"])
@blp.doc(tags=TAG, summary="Send again every failed delivery since a time")
@writes
@blp.arguments(schemas.ReplayArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.ReplayOut)
def replay_webhook(endpoint_id: int, since):
    endpoint = _endpoint(endpoint_id)
    since = since.astimezone(UTC).replace(tzinfo=None)
    return {"replayed": services.replay_failed(endpoint, since)}


@blp.route("/webhooks/deliveries/<int:delivery_id>/resend", methods=["POST"])
@blp.doc(tags=TAG, summary="Send a delivery again (same webhook-id)")
@writes
@blp.response(202, schemas.DeliveryOut)
def resend_delivery(delivery_id: int):
    require("webhooks:admin", admin=True)
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise not_found("delivery")
    return delivery_json(services.resend(delivery)), 202
