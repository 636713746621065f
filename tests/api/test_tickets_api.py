"""The ticket API through the real stack: tokens, the web UI's rules, conventions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from portal.api.models import ApiToken
from portal.db import utcnow
from portal.extensions import db
from portal.tickets.models import Message, Ticket


def test_no_token_or_cookies_alone_get_401(app, world):
    signed_in = world.client_for(world.admin)  # a session cookie of an admin
    response = signed_in.get("/api/v1/tickets")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    before = db.session.scalar(select(func.count(Ticket.id)))
    response = signed_in.post("/api/v1/tickets", json={"subject": "x", "description": "y"})
    assert response.status_code == 401
    assert db.session.scalar(select(func.count(Ticket.id))) == before


def test_token_is_stored_hashed_and_records_last_use(app, world, make_token):
    text = make_token(world.agent)
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == world.agent.id))
    assert text.split("_", 2)[2] not in (row.secret_hash, row.public_id)
    assert row.last_used_at is None
    client = app.test_client(use_cookies=False)
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {text}"}).status_code \
        == 200
    db.session.expire_all()
    assert row.last_used_at is not None and row.last_used_ip == "127.0.0.1"
    wrong = text[:-2] + ("AA" if not text.endswith("AA") else "BB")
    assert client.get("/api/v1/tickets",
                      headers={"Authorization": f"Bearer {wrong}"}).status_code == 401


def test_revoked_and_expired_tokens_are_refused(app, world, make_token):
    from portal.api import tokens

    text = make_token(world.agent)
    auth = {"Authorization": f"Bearer {text}"}
    client = app.test_client(use_cookies=False)
    assert client.get("/api/v1/tickets", headers=auth).status_code == 200
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == world.agent.id))
    tokens.revoke(row)
    db.session.commit()
    assert client.get("/api/v1/tickets", headers=auth).status_code == 401
    expiring = make_token(world.agent, expires_at=utcnow() + timedelta(seconds=60))
    row = db.session.scalar(select(ApiToken).where(ApiToken.revoked_at.is_(None)))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/api/v1/tickets",
                      headers={"Authorization": f"Bearer {expiring}"}).status_code == 401


def test_customer_token_sees_only_their_tickets_and_no_internal_data(app, world, bearer):
    owner = bearer(world.owner)
    listing = owner.get("/api/v1/tickets").get_json()
    assert [t["id"] for t in listing["data"]] == [world.ticket.id]
    assert world.secret not in owner.get("/api/v1/tickets").get_data(as_text=True)
    assert owner.get(f"/api/v1/tickets/{world.private_ticket.id}").status_code == 404
    for path in (f"/api/v1/tickets/{world.ticket.id}",
                 f"/api/v1/tickets/{world.ticket.id}/messages",
                 f"/api/v1/tickets/{world.ticket.id}/events"):
        response = owner.get(path)
        assert response.status_code == 200, path
        assert world.secret.lower() not in response.get_data(as_text=True).lower(), path
    assert owner.get(f"/api/v1/tickets/{world.ticket.id}/notes").status_code == 403
    notes = bearer(world.agent).get(f"/api/v1/tickets/{world.ticket.id}/notes").get_json()
    assert world.secret in notes["data"][0]["body"]


def test_cursor_pagination_walks_every_ticket_once(app, world, bearer):
    from portal.tickets import services
    from portal.tickets.models import TicketType

    for i in range(7):
        services.create_ticket(services.NewTicket(
            subject=f"Paged {i}", description="d", type=TicketType.QUESTION, name="V",
            email=f"v{i}@example.com"))
    db.session.commit()
    agent = bearer(world.agent)
    seen, url = [], "/api/v1/tickets?limit=3"
    while url:
        response = agent.get(url)
        body = response.get_json()
        seen += [t["id"] for t in body["data"]]
        assert body["has_more"] == bool(body["next_cursor"])
        url = response.headers["Link"].split(">")[0][1:] if body["has_more"] else None
    assert len(seen) == len(set(seen)) == db.session.scalar(select(func.count(Ticket.id)))
    assert agent.get("/api/v1/tickets?cursor=garbage").status_code == 400


def test_create_with_idempotency_key_creates_once(app, world, bearer):
    agent = bearer(world.agent)
    payload = {"subject": "Printer jam", "description": "It jams.",
               "requester_email": "someone@example.com", "requester_name": "Some One"}
    headers = {"Idempotency-Key": "abc-123"}
    first = agent.post("/api/v1/tickets", json=payload, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = agent.post("/api/v1/tickets", json=payload, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert db.session.scalar(select(func.count(Ticket.id)).where(
        Ticket.subject == "Printer jam")) == 1
    other = agent.post("/api/v1/tickets", json={**payload, "subject": "Else"}, headers=headers)
    assert other.status_code == 422
    created = db.session.get(Ticket, first.get_json()["id"])
    assert created.channel.value == "api" and created.requester_email == "someone@example.com"


def test_stale_if_match_is_412_and_fresh_one_updates(app, world, bearer):
    agent = bearer(world.agent)
    url = f"/api/v1/tickets/{world.ticket.id}"
    etag = agent.get(url).headers["ETag"]
    changed = agent.patch(url, json={"priority": "low"}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["priority"] == "low"
    stale = agent.patch(url, json={"priority": "high"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    db.session.expire_all()
    assert db.session.get(Ticket, world.ticket.id).priority.value == "low"


def test_field_errors_are_problem_details(app, world, bearer):
    agent = bearer(world.agent)
    response = agent.post("/api/v1/tickets", json={"subject": "", "cc": ["nope"]})
    assert response.status_code == 422
    body = response.get_json(force=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    fields = {e["field"] for e in body["errors"]}
    assert {"subject", "description"} <= fields
    assert agent.patch(f"/api/v1/tickets/{world.ticket.id}",
                       json={"status": "closed"}).status_code == 422  # the state machine


def test_replies_go_through_the_same_services(app, world, bearer):
    owner, agent = bearer(world.owner), bearer(world.agent)
    url = f"/api/v1/tickets/{world.ticket.id}"
    assert owner.post(f"{url}/messages", json={"body": "Still smoking"}).status_code == 201
    assert owner.post(f"{url}/notes", json={"body": "sneaky"}).status_code == 403
    assert agent.post(f"{url}/notes", json={"body": "internal only"}).status_code == 201
    public = owner.get(f"{url}/messages").get_json()["data"]
    assert "Still smoking" in [m["body"] for m in public]
    assert "internal only" not in owner.get(f"{url}/messages").get_data(as_text=True)
    stranger = bearer(world.stranger)
    before = db.session.scalar(select(func.count(Message.id)))
    assert stranger.post(f"{url}/messages", json={"body": "hi"}).status_code == 404
    assert db.session.scalar(select(func.count(Message.id))) == before


def test_scopes_limit_a_token(app, world, bearer):
    reader = bearer(world.agent, scopes=["kb:read"])
    assert reader.get("/api/v1/tickets").status_code == 403
    assert reader.get("/api/v1/kb/articles").status_code == 200


def test_rate_limit_per_token_with_headers(app_factory, make_user):
    from portal.api import tokens

    app = app_factory(RATELIMIT_ENABLED=True, API_RATE_LIMIT="3 per minute")
    with app.app_context():
        user = make_user("agent")
        _row, text = tokens.create_token(user, "t", ["tickets:read"], None)
        db.session.commit()
        client = app.test_client(use_cookies=False)
        auth = {"Authorization": f"Bearer {text}"}
        first = client.get("/api/v1/tickets", headers=auth)
        assert first.headers["RateLimit-Limit"] == "3"
        assert first.headers["RateLimit-Remaining"] == "2"
        client.get("/api/v1/tickets", headers=auth)
        client.get("/api/v1/tickets", headers=auth)
        limited = client.get("/api/v1/tickets", headers=auth)
        assert limited.status_code == 429
        assert limited.headers["Content-Type"] == "application/problem+json"
        assert int(limited.headers["Retry-After"]) > 0


def test_internal_attachments_never_download_with_a_customer_token(app, world, bearer):
    owner, agent = bearer(world.owner), bearer(world.agent)
    base = f"/api/v1/tickets/{world.ticket.id}/attachments"
    public, internal = world.public_attachment.id, world.internal_attachment.id
    with owner.get(f"{base}/{public}") as response:
        assert response.status_code == 200 and response.data.startswith(b"%PDF")
        assert "attachment" in response.headers["Content-Disposition"]
    assert owner.get(f"{base}/{internal}").status_code == 404
    with agent.get(f"{base}/{internal}") as response:
        assert response.status_code == 200
    other = world.private_ticket.messages[0].attachments[0].id
    assert agent.get(f"{base}/{other}").status_code == 404  # not this ticket's file


def test_report_figures_match_the_world(app, world, bearer):
    response = bearer(world.agent).get("/api/v1/reports/summary")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["summary"]["tickets_created"] == 2
    assert sum(day["created"] for day in body["daily"]) == 2
    bad = bearer(world.agent).get("/api/v1/reports/summary?start=2026-02-01&end=2020-01-01")
    assert bad.status_code == 422


def test_admin_creates_customers_once(app, world, bearer):
    admin = bearer(world.admin)
    created = admin.post("/api/v1/users", json={"email": "New@Example.com", "name": "Nia New"})
    assert created.status_code == 201
    assert created.get_json()["role"] == "customer"
    assert created.get_json()["email"] == "new@example.com"
    again = admin.post("/api/v1/users", json={"email": "new@example.com", "name": "Nia"})
    assert again.status_code == 409 and again.get_json(force=True)["errors"][0]["field"] == "email"


def test_attachments_on_replies_and_notes_pass_the_web_upload_checks(app, world, bearer):
    import base64

    owner, agent = bearer(world.owner), bearer(world.agent)
    url = f"/api/v1/tickets/{world.ticket.id}"
    pdf = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").decode()
    made = owner.post(f"{url}/messages", json={
        "body": "Here is the invoice", "attachments": [{"filename": "invoice.pdf",
                                                        "content_base64": pdf}]})
    assert made.status_code == 201
    [attachment] = made.get_json()["attachments"]
    with owner.get(f"{url}/attachments/{attachment['id']}") as response:
        assert response.status_code == 200 and response.data.startswith(b"%PDF")
    exe = base64.b64encode(b"MZ\x90\x00\x03" + b"\x00" * 64).decode()
    before = db.session.scalar(select(func.count(Message.id)))
    refused = agent.post(f"{url}/notes", json={
        "body": "tool", "attachments": [{"filename": "tool.exe", "content_base64": exe}]})
    assert refused.status_code == 422 and refused.headers["Content-Type"].startswith(
        "application/problem+json")
    not_base64 = owner.post(f"{url}/messages", json={
        "body": "x", "attachments": [{"filename": "a.pdf", "content_base64": "%%%"}]})
    assert not_base64.status_code == 422
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Message.id))) == before  # nothing half-written
