"""Webhook delivery to a real local HTTP receiver, verified with the reference
`standardwebhooks` library; retries, 410, rotation, opt-in notes, Slack, SSRF refusals."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

from portal.agent import services as agent_services
from portal.db import utcnow
from portal.extensions import db
from portal.jobs.models import Job
from portal.webhooks import outbound, services
from portal.webhooks.models import WebhookDelivery

LOOPBACK = [{"WEBHOOKS_ALLOW_HTTP": True, "WEBHOOKS_ALLOW_LOOPBACK": True}]


class Receiver:
    """An HTTP server on 127.0.0.1 that answers with the queued status codes (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if 300 <= status < 400:  # a redirect back to this receiver
                    self.send_header("Location", receiver.url + "?followed")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _endpoint(url, events, kind="standard"):
    endpoint = services.create_endpoint(url, events, "test", kind)
    db.session.commit()
    return endpoint


def _make_retries_due():
    db.session.execute(update(Job).where(Job.status == "queued").values(run_at=utcnow()))
    db.session.commit()


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_signed_events_verify_with_the_reference_library(app, world, receiver, run_jobs):
    endpoint = _endpoint(receiver.url, ["ticket.updated", "ticket.replied", "ticket.solved"])
    agent_services.apply_changes(world.ticket, agent_services.Changes(
        priority=__import__("portal.tickets.models", fromlist=["Priority"]).Priority.LOW),
        world.agent)
    agent_services.reply(world.ticket, world.agent, "Fixed it", internal=False)
    db.session.commit()
    run_jobs()
    assert len(receiver.received) == 2
    types = set()
    for headers, body in receiver.received:
        payload = Webhook(endpoint.secret).verify(body, headers)  # raises if the signature fails
        types.add(payload["type"])
        assert headers["webhook-id"].startswith("msg_")
    assert types == {"ticket.updated", "ticket.replied"}
    updated = next(json.loads(b) for _h, b in receiver.received if b"ticket.updated" in b)
    assert updated["data"]["changes"]["priority"] == {"old": "urgent", "new": "low"}
    # Tampering is caught by the same library.
    headers, body = receiver.received[0]
    with pytest.raises(Exception):  # noqa: B017 (the library's own verification error)
        Webhook(endpoint.secret).verify(body.replace(b"T", b"X"), headers)


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_rolled_back_change_sends_nothing(app, world, receiver, run_jobs):
    _endpoint(receiver.url, ["ticket.replied"])
    agent_services.reply(world.ticket, world.agent, "never sent", internal=False)
    db.session.rollback()
    run_jobs()
    assert receiver.received == []
    assert db.session.scalar(select(WebhookDelivery.id)) is None


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_internal_notes_only_reach_endpoints_that_opt_in(app, world, receiver, run_jobs):
    other = Receiver()
    try:
        _endpoint(receiver.url, ["ticket.note_added", "ticket.replied"])
        _endpoint(other.url, ["ticket.replied", "ticket.updated", "ticket.created"])
        agent_services.reply(world.ticket, world.agent, "SECRET NOTE", internal=True)
        db.session.commit()
        run_jobs()
        assert [json.loads(b)["type"] for _h, b in receiver.received] == ["ticket.note_added"]
        assert b"SECRET NOTE" in receiver.received[0][1]
        assert other.received == []
    finally:
        other.close()


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_failing_receiver_is_retried_until_it_recovers(app, world, receiver, run_jobs):
    endpoint = _endpoint(receiver.url, ["ticket.replied"])
    receiver.answers = [500, 503]
    agent_services.reply(world.ticket, world.agent, "retry me", internal=False)
    db.session.commit()
    run_jobs()
    delivery = db.session.scalar(select(WebhookDelivery))
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at > utcnow()  # backoff: not due yet
    assert run_jobs() == 0
    for _ in range(2):
        _make_retries_due()
        run_jobs()
    db.session.expire_all()
    delivery = db.session.get(WebhookDelivery, delivery.id)
    assert delivery.status == "succeeded" and delivery.attempts == 3
    assert [a.status_code for a in reversed(delivery.attempt_log)] == [500, 503, 200]
    ids = {h["webhook-id"] for h, _b in receiver.received}
    assert len(ids) == 1  # the same webhook-id on every retry
    for headers, body in receiver.received:
        Webhook(endpoint.secret).verify(body, headers)
    assert db.session.get(type(endpoint), endpoint.id).failing_since is None


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_410_disables_the_endpoint_and_emails_admins(app, world, receiver, mailbox):
    endpoint = _endpoint(receiver.url, ["ticket.replied"])
    receiver.answers = [410]
    agent_services.reply(world.ticket, world.agent, "gone?", internal=False)
    db.session.commit()
    assert mailbox.to(world.admin.email)  # waits until the worker drained the queue
    db.session.expire_all()
    endpoint = db.session.get(type(endpoint), endpoint.id)
    assert not endpoint.enabled and "410" in endpoint.disabled_reason


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_rotation_signs_with_both_secrets(app, world, receiver, run_jobs):
    endpoint = _endpoint(receiver.url, ["ticket.replied"])
    old = endpoint.secret
    services.rotate_secret(endpoint)
    db.session.commit()
    services.send_test(endpoint)
    db.session.commit()
    run_jobs()
    headers, body = receiver.received[-1]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(old).verify(body, headers)
    Webhook(endpoint.secret).verify(body, headers)


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_slack_endpoint_gets_readable_escaped_text(app, world, receiver, run_jobs):
    _endpoint(receiver.url, ["ticket.created"], kind="slack")
    from portal.tickets import services as ticket_services
    from portal.tickets.models import TicketType

    ticket_services.create_ticket(ticket_services.NewTicket(
        subject="Help <!channel> & all", description="d", type=TicketType.QUESTION,
        name="Vic Visitor", email="vic@example.com"))
    db.session.commit()
    run_jobs()
    message = json.loads(receiver.received[0][1])
    assert "&lt;!channel&gt; &amp; all" in message["text"]
    assert "<!channel>" not in json.dumps(message)
    section = message["blocks"][0]["text"]["text"]
    assert "TKT-" in section and "Vic Visitor" in section and "Priority" in section


def test_admin_pages_work_without_javascript(app, world, receiver, run_jobs):
    app.config.update(WEBHOOKS_ALLOW_HTTP=True, WEBHOOKS_ALLOW_LOOPBACK=True)
    admin = world.client_for(world.admin)
    response = admin.post("/admin/webhooks/", data={
        "url": receiver.url, "kind": "standard", "description": "CRM",
        "events": ["ticket.replied"]})
    assert response.status_code == 303
    page = admin.get(response.location)
    assert b"whsec_" in page.data
    endpoint_url = response.location
    assert admin.post(endpoint_url + "/test").status_code == 303
    run_jobs()
    page = admin.get(endpoint_url).get_data(as_text=True)
    assert "webhook.test" in page and "succeeded" in page
    delivery = db.session.scalar(select(WebhookDelivery))
    assert admin.post(f"/admin/webhooks/deliveries/{delivery.id}/resend").status_code == 303
    assert admin.get(f"/admin/webhooks/deliveries/{delivery.id}").status_code == 200
    assert admin.post(endpoint_url + "/replay",
                      data={"since": "2020-01-01T00:00"}).status_code == 303
    assert world.client_for(world.agent).get("/admin/webhooks/").status_code == 404


@pytest.mark.parametrize("url", [
    "http://example.com/hook",  # plain http without the development setting
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://10.0.0.5/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",  # cloud metadata
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://[fd00::1]/hook",
    "https://0.0.0.0/hook",
    "https://user:pw@example.com/hook",
    "ftp://example.com/x",
])
def test_ssrf_refusals(app, url):
    with pytest.raises(outbound.Refused):
        outbound.check_url(url)
    with pytest.raises(services.EndpointError):
        services.create_endpoint(url, ["ticket.created"])


def test_loopback_setting_allows_only_loopback(app):
    app.config.update(WEBHOOKS_ALLOW_HTTP=True, WEBHOOKS_ALLOW_LOOPBACK=True)
    assert outbound.check_url("http://127.0.0.1:9/x").address == "127.0.0.1"
    with pytest.raises(outbound.Refused):
        outbound.check_url("http://10.1.2.3/x")


def test_delivery_connects_to_the_checked_address(app, monkeypatch, receiver):
    """A host that resolves to a public address at check time but would resolve elsewhere
    later: the connection goes to the checked address (no second lookup)."""
    import socket

    app.config.update(WEBHOOKS_ALLOW_HTTP=True, WEBHOOKS_ALLOW_LOOPBACK=True)
    calls = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        calls.append(host)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    port = receiver.server.server_port
    result = outbound.post(f"http://rebind.test:{port}/hook", b"{}", {})
    assert result.status == 200
    # The name was looked up once, by the check; the connection used the checked address.
    assert calls == ["rebind.test", "127.0.0.1"]
    assert receiver.received[0][0]["host"] == f"rebind.test:{port}"


@pytest.mark.parametrize("app", LOOPBACK, indirect=True)
def test_redirects_are_failures_and_never_followed(app, world, receiver, run_jobs):
    services.create_endpoint(receiver.url, ["ticket.replied"])
    db.session.commit()
    receiver.answers = [302]
    agent_services.reply(world.ticket, world.agent, "redirected?", internal=False)
    db.session.commit()
    run_jobs()
    delivery = db.session.scalar(select(WebhookDelivery))
    assert delivery.status == "pending" and delivery.last_status_code == 302
    assert len(receiver.received) == 1  # nothing fetched the Location
