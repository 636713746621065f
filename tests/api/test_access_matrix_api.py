"""Who may do what through the API: every operation in the OpenAPI document, as every kind
of person, each with a token holding every scope their role allows.

An operation nobody classified fails the test, so whoever adds one says who may use it.
Refusals never change data: 404 for things outside the caller's view (never a hint that
they exist), 403 for a role or scope that does not allow the action.
"""

from __future__ import annotations

import pytest
from test_access_matrix import snapshot

from portal.webhooks import services as webhook_services

ROLES = ["owner", "colleague", "private_peer", "stranger", "agent", "admin"]
STAFF = {"agent", "admin"}
READERS = {"owner", "colleague", "agent", "admin"}  # who may see world.ticket

# (method, path) -> who is allowed; the rest get the refusal code.
# "ticket" operations: readers allowed; customers who cannot see the ticket get 404.
RULES = {
    ("GET", "/api/v1/tickets"): ("all", None),
    ("POST", "/api/v1/tickets"): ("staff", 403),  # for someone else (own: the test below)
    ("GET", "/api/v1/tickets/{ticket_id}"): ("ticket", None),
    ("PATCH", "/api/v1/tickets/{ticket_id}"): ("ticket-staff", 403),
    ("GET", "/api/v1/tickets/{ticket_id}/messages"): ("ticket", None),
    ("POST", "/api/v1/tickets/{ticket_id}/messages"): ("ticket", None),
    ("GET", "/api/v1/tickets/{ticket_id}/notes"): ("staff", 403),
    ("POST", "/api/v1/tickets/{ticket_id}/notes"): ("staff", 403),
    ("GET", "/api/v1/tickets/{ticket_id}/events"): ("ticket", None),
    ("GET", "/api/v1/tickets/{ticket_id}/attachments/{attachment_id}"): ("ticket", None),
    ("GET", "/api/v1/csat"): ("staff", 403),
    ("GET", "/api/v1/users"): ("staff", 403),
    ("POST", "/api/v1/users"): ("admin", 403),
    ("GET", "/api/v1/users/{user_id}"): ("staff", 403),
    ("GET", "/api/v1/organizations"): ("staff", 403),
    ("GET", "/api/v1/reports/summary"): ("staff", 403),
    ("GET", "/api/v1/kb/categories"): ("all", None),
    ("POST", "/api/v1/kb/categories"): ("staff", 403),
    ("POST", "/api/v1/kb/sections"): ("staff", 403),
    ("GET", "/api/v1/kb/articles"): ("all", None),
    ("GET", "/api/v1/kb/articles/{article_id}"): ("staff", 404),  # an internal article
    ("POST", "/api/v1/kb/articles"): ("staff", 403),
    ("PATCH", "/api/v1/kb/articles/{article_id}"): ("staff", 403),
    ("POST", "/api/v1/kb/articles/{article_id}/publish"): ("staff", 403),
    ("GET", "/api/v1/search"): ("all", None),
    ("GET", "/api/v1/webhooks"): ("admin", 403),
    ("POST", "/api/v1/webhooks"): ("admin", 403),
    ("GET", "/api/v1/webhooks/{endpoint_id}"): ("admin", 403),
    ("PATCH", "/api/v1/webhooks/{endpoint_id}"): ("admin", 403),
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): ("admin", 403),
    ("POST", "/api/v1/webhooks/{endpoint_id}/test"): ("admin", 403),
    ("POST", "/api/v1/webhooks/{endpoint_id}/rotate-secret"): ("admin", 403),
    ("GET", "/api/v1/webhooks/{endpoint_id}/deliveries"): ("admin", 403),
    ("POST", "/api/v1/webhooks/{endpoint_id}/replay"): ("admin", 403),
    ("POST", "/api/v1/webhooks/deliveries/{delivery_id}/resend"): ("admin", 403),
}


def allowed(rule: str, role: str) -> bool:
    return {"all": True, "ticket": role in READERS, "ticket-staff": role in STAFF,
            "staff": role in STAFF, "admin": role == "admin"}[rule]


def refusal(rule: str, code: int | None, role: str) -> int:
    if rule in ("ticket", "ticket-staff") and role not in READERS:
        return 404
    return code


def operations(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    for path, item in spec["paths"].items():
        for method in ("get", "post", "patch", "delete"):
            if method in item:
                yield method.upper(), path


def body_for(method: str, path: str, w) -> dict | None:
    if method not in ("POST", "PATCH"):
        return None
    return {
        "/api/v1/tickets": {"subject": "Via API", "description": "Hello",
                            "requester_email": "someone@example.com"},
        "/api/v1/tickets/{ticket_id}": {"priority": "high"},
        "/api/v1/users": {"email": f"new-{w.counter()}@example.com", "name": "New Customer"},
        "/api/v1/tickets/{ticket_id}/messages": {"body": "A reply"},
        "/api/v1/tickets/{ticket_id}/notes": {"body": "A note"},
        "/api/v1/kb/articles": {"title": "New", "body": "Body", "section_id":
                                w.public_article.section_id},
        "/api/v1/kb/articles/{article_id}": {"title": "Renamed"},
        "/api/v1/kb/categories": {"name": "Billing"},
        "/api/v1/kb/sections": {"name": "Invoices", "category_id":
                                w.public_article.section.category_id},
        "/api/v1/webhooks": {"url": "http://127.0.0.1:9/x", "events": ["ticket.created"]},
        "/api/v1/webhooks/{endpoint_id}": {"description": "changed"},
    }.get(path, {})


@pytest.mark.parametrize("role", ROLES)
def test_every_api_operation_as_every_role(app, world, bearer, role):
    w = world
    app.config.update(WEBHOOKS_ALLOW_HTTP=True, WEBHOOKS_ALLOW_LOOPBACK=True)
    endpoint = webhook_services.create_endpoint("http://127.0.0.1:9/hook", ["ticket.created"])
    delivery = webhook_services.send_test(endpoint)
    from portal.extensions import db

    db.session.commit()
    ids = {"ticket_id": w.ticket.id, "attachment_id": w.public_attachment.id,
           "user_id": w.owner.id, "article_id": w.internal_article.id,
           "endpoint_id": endpoint.id, "delivery_id": delivery.id}
    user = getattr(w, role)
    client = bearer(user)
    w.counter = iter(range(1000)).__next__
    problems, seen = [], set()
    for method, path in operations(app):
        if (method, path) not in RULES:
            problems.append(f"{method} {path}: unclassified operation, add it to this test")
            continue
        seen.add((method, path))
        rule, code = RULES[(method, path)]
        url = path.format(**ids)
        if path.endswith("/replay"):
            url += "?since=2020-01-01T00:00:00Z"
        elif path == "/api/v1/search":
            url += "?q=printer"
        before = snapshot()
        response = client.open(method, url, json=body_for(method, path, w))
        response.close()  # a download holds its file open until closed
        status = response.status_code
        if status >= 500:
            problems.append(f"{method} {url}: {status}")
        elif allowed(rule, role):
            if status >= 400:
                problems.append(f"{method} {url}: {status} for an allowed {role}: "
                                f"{response.get_data(as_text=True)[:200]}")
        else:
            expected = refusal(rule, code, role)
            if status != expected:
                problems.append(f"{method} {url}: {status}, expected {expected}")
            if snapshot() != before:
                problems.append(f"{method} {url}: refused but changed data")
        if method == "DELETE" and status < 300:  # put the endpoint back for later rows
            endpoint = webhook_services.create_endpoint("http://127.0.0.1:9/hook",
                                                        ["ticket.created"])
            delivery = webhook_services.send_test(endpoint)
            db.session.commit()
            ids.update(endpoint_id=endpoint.id, delivery_id=delivery.id)
    assert seen == set(RULES), f"documented operations missing: {set(RULES) - seen}"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ["owner", "agent"])
def test_a_token_never_exceeds_its_owner(app, world, role):
    from portal.api import tokens

    user = getattr(world, role)
    for scope in ("webhooks:admin", "users:write"):
        with pytest.raises(tokens.TokenError):
            tokens.create_token(user, "too much", [scope], None)
    if role == "owner":
        with pytest.raises(tokens.TokenError):
            tokens.create_token(user, "too much", ["users:read"], None)


def test_customer_token_files_tickets_for_that_customer(app, world, bearer):
    client = bearer(world.stranger)
    response = client.post("/api/v1/tickets", json={"subject": "Mine", "description": "Help"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["requester"]["email"] == world.stranger.email
    assert "tags" not in body and "priority" not in body  # the customer's view of a ticket
